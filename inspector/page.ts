/**
 * The inspector page: one HTML document whose only other asset is the layout library the daemon
 * serves itself (/assets/elk.js), so it works offline. It draws each chart from /api/charts (the
 * machine definition itself), lights the actor's state, lists its persisted history, and follows
 * /api/events to update without reloading.
 */
import { CHART_TEXT, elkChart } from './chart-layout.js';

export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>podchart inspector</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 340px 1fr; height: 100vh; color: #1d2733; }
  aside { border-right: 1px solid #d6dde5; overflow: auto; padding: 12px; background: #f6f8fa; }
  main { overflow: auto; padding: 16px; }
  h1 { font-size: 16px; margin: 0 0 8px; }
  .filters input, .filters select { width: 100%; margin: 2px 0; padding: 4px; box-sizing: border-box; }
  .filters label { display: block; font-size: 12px; margin: 2px 0; } .filters label input { width: auto; margin: 0 4px 0 0; vertical-align: middle; }
  ul { list-style: none; padding-left: 14px; margin: 4px 0; }
  li.actor { cursor: pointer; padding: 2px 4px; border-radius: 4px; }
  li.actor:hover, li.actor.selected { background: #dbe9ff; }
  .state { font-family: ui-monospace, monospace; font-size: 12px; padding: 0 4px; border-radius: 3px; background: #e4e8ee; }
  .state.RUNNING { background: #c8f0d2; } .state.STOPPED, .state.EXITED { background: #f4e2b8; }
  .state.REMOVING, .state.PENDING, .state.STOPPING, .state.STARTING, .state.CREATING { background: #d7e3fb; }
  #removed h2 { font-size: 13px; margin: 16px 0 0; color: #6a7785; } li.removed { color: #6a7785; }
  .edge-group.taken .edge { stroke: #d9534f; stroke-width: 2; } #history tr.picked td { background: #fff3cd; } #history tr[data-to] { cursor: pointer; }
  #timeline-steps tr.slow td { background: #fde2e1; font-weight: 600; } .bar { display: inline-block; height: 8px; background: #7a9cc6; }
  #why { border-left: 4px solid #7a9cc6; background: #f3f6fb; padding: 4px 10px; margin: 8px 0; } #why p { font-weight: 600; margin: 4px 0; } #why ul { margin: 2px 0 4px 18px; padding: 0; }
  .age { color: #6a7785; font-size: 12px; }
  svg text { font: 12px system-ui, sans-serif; }
  .node rect { fill: #fff; stroke: #8a98a8; rx: 6; }
  .compound rect { fill: #f3f6fb; stroke: #b7c3d0; rx: 8; } .compound.active rect { stroke: #b38600; stroke-width: 2; }
  svg text.small { font-size: 10px; fill: #51606f; } .compound > text:first-of-type, .node > text:first-of-type { font-weight: 600; }
  #stays-everywhere { font-size: 12px; color: #51606f; }
  .node.current rect { fill: #ffd54a; stroke: #b38600; stroke-width: 2; }
  .edge { stroke: #9aa7b4; fill: none; marker-end: url(#arrow); }
  .edge.back { stroke-dasharray: 4 3; stroke: #c3ccd5; }
  .edge-label { fill: #51606f; font-size: 10px; }
  table { border-collapse: collapse; width: 100%; margin-top: 12px; font-size: 12px; }
  td, th { border-bottom: 1px solid #e1e6eb; padding: 3px 6px; text-align: left; }
  tr.error td { color: #b00020; } #restore td { vertical-align: top; }
  #quarantine h2, #cleanup h2 { font-size: 13px; margin: 16px 0 0; color: #b00020; }
  pre { background: #f6f8fa; padding: 8px; overflow: auto; max-height: 240px; font-size: 12px; }
</style>
</head>
<body>
<aside>
  <h1>podchart</h1>
  <div class="filters">
    <select id="f-state"><option value="">every state</option></select>
    <input id="f-ns" placeholder="namespace">
    <input id="f-label" placeholder="label key=value">
    <input id="f-search" placeholder="search: id prefix or name">
    <label><input type="checkbox" id="f-error"> only with a last error</label>
  </div>
  <p><a href="#/restore" id="restore-link">last restore</a> · charts: <a href="#/chart/sandbox">pod</a>, <a href="#/chart/container">container</a>, <a href="#/chart/supervisor">supervisor</a></p>
  <div id="tree">loading…</div>
  <div id="removed"></div>
  <div id="quarantine"></div>
  <div id="cleanup"></div>
</aside>
<main>
  <div id="detail"><p>Select an actor on the left.</p></div>
</main>
<script>
(function () {
  var charts = {};
  var tree = null;
  var selected = null;
  var paged = null;
  function $(id) { return document.getElementById(id); }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; }); }
  function age(ns) {
    var s = Math.max(0, Math.round((Date.now() - Number(BigInt(ns) / 1000000n)) / 1000));
    if (s < 60) return s + 's'; if (s < 3600) return Math.round(s / 60) + 'm'; return Math.round(s / 3600) + 'h';
  }
  function top(state) { return String(state).split('.')[0]; }
  function matches(a, pod) {
    var st = $('f-state').value, ns = $('f-ns').value.trim(), lab = $('f-label').value.trim(), q = $('f-search').value.trim().toLowerCase();
    if (st && top(a.state) !== st) return false;
    if (ns && pod.namespace.indexOf(ns) < 0) return false;
    if (lab) { var kv = lab.split('='); if ((a.labels || {})[kv[0]] !== kv[1]) return false; }
    if (q && a.id.indexOf(q) !== 0 && String(a.name).toLowerCase().indexOf(q) < 0) return false;
    if ($('f-error').checked && !a.lastError) return false;
    return true;
  }
  // A URL per actor: #/pod/<id> or #/container/<id>, kept as the selection changes and read on load.
  function select(id, kind) {
    selected = id;
    paged = null;
    var hash = '#/' + (kind === 'sandbox' ? 'pod' : 'container') + '/' + id;
    if (location.hash !== hash) history.replaceState(null, '', hash);
    renderTree(); showActor();
  }
  // What restore found on the host, in words (the JSON itself in the cell's title).
  function observedText(o) {
    var at = function (ns) { return new Date(Number(BigInt(ns) / 1000000n)).toISOString().slice(11, 19); };
    var parts = [o.exit ? 'exit file: code ' + o.exit.code + (o.exit.reason ? ' (' + o.exit.reason + ')' : '') + ' at ' + at(o.exit.at) : 'no exit file', o.alive ? 'pid alive, same start time' : 'pid not alive'];
    if ('conmonPid' in o) parts.push(o.conmonPid === null ? 'no conmon pid file' : 'conmon ' + o.conmonPid + (o.conmonAlive ? ' alive' : ' gone'));
    if (o.runtime) parts.push('runc: ' + (o.runtime.running ? 'running, pid ' + o.runtime.pid : 'not running'));
    return parts.join('; ');
  }
  // The restore this daemon started with: every actor, what was persisted and observed, the decision and why.
  function showRestore() {
    selected = null;
    if (tree) renderTree();
    get('/api/restore').then(function (r) {
      var took = r.finishedAt ? (r.finishedAt - r.startedAt) + ' ms' : 'still running';
      $('detail').innerHTML = '<h2 id="restore-title">Last restore: ' + new Date(r.startedAt).toISOString() + ', ' + r.entries.length + ' actors, ' + took + '</h2>' +
        (r.failed.length ? '<p class="error">' + r.failed.length + ' pods failed to restore: ' + r.failed.map(function (f) { return esc(f.sandboxId.slice(0, 13) + ': ' + f.error); }).join('; ') + '</p>' : '') +
        '<table id="restore"><tr><th>kind</th><th>id</th><th>persisted</th><th>observed</th><th>decided</th><th>now</th><th>why</th><th>took</th></tr>' + r.entries.map(function (e) {
          return '<tr data-id="' + esc(e.id) + '"><td>' + esc(e.kind) + '</td><td><a href="#/' + (e.kind === 'sandbox' ? 'pod' : 'container') + '/' + esc(e.id) + '">' + esc(e.id.slice(0, 13)) + '</a></td><td>' + esc(e.persisted) + '</td><td title="' + esc(JSON.stringify(e.observed)) + '">' +
            esc(observedText(e.observed)) + '</td><td>' + esc(e.decided.join(', ')) + '</td><td>' + esc(e.now) + '</td><td>' + esc(e.why) + '</td><td>' + Math.round(e.ms) + ' ms</td></tr>';
        }).join('') + '</table>';
    });
  }
  // A machine's chart alone: #/chart/sandbox, #/chart/container (no actor lit), or
  // #/chart/supervisor (the daemon's own state lit).
  function showChart(kind) {
    selected = null;
    if (tree) renderTree();
    (charts[kind] ? Promise.resolve(charts[kind]) : get('/api/charts/' + kind)).then(function (g) {
      charts[kind] = g;
      return layoutChart(kind, g);
    }).then(function (chart) {
      var names = { sandbox: 'pod sandbox', container: 'container', supervisor: 'supervisor' };
      $('detail').innerHTML = '<h2 id="chart-title">The ' + names[kind] + ' chart</h2>' + drawChart(chart, kind === 'supervisor' && tree ? tree.supervisor.state : '');
    }, function (err) { $('detail').innerHTML = '<p class="error">' + esc(err.message) + '</p>'; });
  }
  function fromHash() {
    if (location.hash === '#/restore') { showRestore(); return; }
    var chart = /^#[/]chart[/](sandbox|container|supervisor)$/.exec(location.hash);
    if (chart) { showChart(chart[1]); return; }
    var m = /^#[/](pod|container)[/]([0-9a-f]{64})$/.exec(location.hash);
    if (m && m[2] !== selected) { selected = m[2]; paged = null; if (tree) renderTree(); showActor(); }
  }
  window.addEventListener('hashchange', fromHash);
  function item(a, pod) {
    return '<li class="actor' + (selected === a.id ? ' selected' : '') + '" data-id="' + a.id + '" data-kind="' + a.kind + '">' +
      esc(a.kind === 'sandbox' ? pod.namespace + '/' + a.name : a.name) + ' <span class="state ' + top(a.state) + '">' + esc(a.state) + '</span>' +
      ' <span class="age">' + age(a.createdAt) + '</span></li>';
  }
  function renderTree() {
    var html = '<ul><li><a href="#/chart/supervisor" id="supervisor-link"><b>supervisor</b></a> <span class="state">' + esc(tree.supervisor.state) + '</span><ul>';
    tree.pods.forEach(function (pod) {
      var kids = pod.containers.filter(function (c) { return matches(c, pod); });
      if (!matches(pod, pod) && kids.length === 0) return;
      html += item(pod, pod);
      if (kids.length) html += '<ul>' + kids.map(function (c) { return item(c, pod); }).join('') + '</ul>';
    });
    $('tree').innerHTML = html + '</ul></li></ul>';
    Array.prototype.forEach.call(document.querySelectorAll('li.actor'), function (li) {
      li.onclick = function () { select(li.dataset.id, li.dataset.kind); };
    });
    var gone = tree.removed || [];
    $('removed').innerHTML = !gone.length ? '' : '<h2>Removed lately (history kept)</h2><ul>' + gone.map(function (r) {
      return '<li class="actor removed' + (selected === r.id ? ' selected' : '') + '" data-id="' + r.id + '" data-kind="' + r.kind + '">' + esc(r.kind) + ' ' + esc(r.id.slice(0, 13)) +
        ' <span class="age">' + esc(new Date(r.removedAt).toISOString().slice(11, 19)) + '</span></li>';
    }).join('') + '</ul>';
    Array.prototype.forEach.call(document.querySelectorAll('#removed li.actor'), function (li) {
      li.onclick = function () { select(li.dataset.id, li.dataset.kind); };
    });
    var states = {};
    tree.pods.forEach(function (p) { states[top(p.state)] = 1; p.containers.forEach(function (c) { states[top(c.state)] = 1; }); });
    var sel = $('f-state'), cur = sel.value;
    sel.innerHTML = '<option value="">every state</option>' + Object.keys(states).sort().map(function (s) { return '<option' + (s === cur ? ' selected' : '') + '>' + s + '</option>'; }).join('');
  }
  // The charts are laid out by ELK (elkjs, served by the daemon at /assets/elk.js: no CDN), from
  // the graph elkChart builds (inspector/chart-layout.ts, the same source the unit tests run),
  // once per kind: only the lit state changes between drawings.
  var elkLoaded = null, laidOut = {};
  function loadElk() {
    if (!elkLoaded) elkLoaded = new Promise(function (resolve, reject) {
      var script = document.createElement('script');
      script.src = withToken('/assets/elk.js');
      script.onload = function () { resolve(new ELK()); };
      script.onerror = function () { elkLoaded = null; reject(new Error('the layout library /assets/elk.js could not be loaded')); };
      document.head.appendChild(script);
    });
    return elkLoaded;
  }
  var measure = document.createElement('canvas').getContext('2d');
  function textWidth(text, px, bold) { measure.font = (bold ? '600 ' : '') + px + 'px system-ui, sans-serif'; return measure.measureText(text).width; }
  var CHART_TEXT = ${JSON.stringify(CHART_TEXT)};
  ${elkChart.toString()}
  function layoutChart(kind, g) {
    if (!laidOut[kind]) {
      var chart = elkChart(g, textWidth, CHART_TEXT);
      laidOut[kind] = loadElk().then(function (elk) { return elk.layout(chart.elk); }).then(function (laid) {
        return { laid: laid, lines: chart.lines, headers: chart.headers, g: g };
      }, function (err) { delete laidOut[kind]; throw err; });
    }
    return laidOut[kind];
  }
  function drawChart(l, current) {
    if (l.error) return '<p class="error" id="chart-error">The chart cannot be drawn: ' + esc(l.error) + '</p>';
    var nodes = [], edges = [];
    (function walk(n) {
      (n.edges || []).forEach(function (e) { edges.push(e); });
      (n.children || []).forEach(function (c) { nodes.push(c); walk(c); });
    })(l.laid);
    var T = CHART_TEXT;
    function lines(id, x, y) {
      return l.lines[id].map(function (t, i) {
        return '<text' + (i ? ' class="small"' : '') + ' x="' + (x + 8) + '" y="' + (y + (i ? T.titleLine + i * T.smallLine - 2 : T.titleLine)) + '">' + esc(t) + '</text>';
      }).join('');
    }
    // Scaled down to the panel's width when wider (the lit state stays in view), never up.
    var w = Math.ceil(l.laid.width), h = Math.ceil(l.laid.height);
    var svg = '<svg id="chart" viewBox="0 0 ' + w + ' ' + h + '" width="' + w + '" height="' + h + '" style="max-width: 100%; height: auto"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#9aa7b4"/></marker></defs>';
    // Compound states first, behind what they hold.
    nodes.filter(function (n) { return (n.children || []).length; }).forEach(function (n) {
      svg += '<g class="compound' + (current.indexOf(n.id + '.') === 0 ? ' active' : '') + '" data-state="' + esc(n.id) + '" data-header="' + l.headers[n.id] + '"><rect x="' + n.x + '" y="' + n.y + '" width="' + n.width + '" height="' + n.height + '"></rect>' + lines(n.id, n.x, n.y) + '</g>';
    });
    edges.forEach(function (e) {
      var s = (e.sections || [])[0];
      if (!s) return;
      var pts = [s.startPoint].concat(s.bendPoints || [], [s.endPoint]);
      var key = e.sources[0] + '>' + e.targets[0], label = e.labels[0];
      var events = label.text.split('\\n');
      svg += '<g class="edge-group" data-edge="' + esc(key) + '"><path class="edge' + (s.endPoint.y < s.startPoint.y ? ' back' : '') + '" d="M' + pts.map(function (p) { return p.x + ',' + p.y; }).join(' L') + '"/>' +
        '<title>' + esc(e.sources[0] + ' → ' + e.targets[0] + ': ' + events.join(', ')) + '</title>' +
        '<text class="edge-label" x="' + (label.x + 2) + '" y="' + label.y + '">' + events.map(function (ev, i) {
          return '<tspan x="' + (label.x + 2) + '" y="' + (label.y + T.smallPx + i * T.smallLine) + '">' + esc(ev) + '</tspan>';
        }).join('') + '</text></g>';
    });
    nodes.filter(function (n) { return !(n.children || []).length; }).forEach(function (n) {
      svg += '<g class="node' + (current === n.id ? ' current' : '') + '" data-state="' + esc(n.id) + '"><rect x="' + n.x + '" y="' + n.y + '" width="' + n.width + '" height="' + n.height + '"></rect>' + lines(n.id, n.x, n.y) + '</g>';
    });
    svg += '</svg>';
    return l.g.staysEverywhere.length ? svg + '<p id="stays-everywhere">In every state, handled in place: ' + esc(l.g.staysEverywhere.join(', ')) + '</p>' : svg;
  }
  // Off loopback the inspector needs its token: given once in the page's URL, passed on to every call.
  var token = new URLSearchParams(location.search).get('token');
  function withToken(url) { return token ? url + (url.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token) : url; }
  function get(url) { return fetch(withToken(url), { cache: 'no-store' }).then(function (r) { return r.json(); }); }
  function showActor(before) {
    if (!selected) return;
    get('/api/actors/' + selected + (before ? '?before=' + before : '')).then(function (a) {
      if (a.error) { $('detail').innerHTML = '<p id="not-found">' + esc(a.error) + '</p>'; return; }
      return (charts[a.kind] ? Promise.resolve(charts[a.kind]) : get('/api/charts/' + a.kind)).then(function (g) {
        charts[a.kind] = g;
        // Without its chart the page still tells the actor's story.
        return layoutChart(a.kind, g).catch(function (err) { return { error: err.message }; });
      }).then(function (chart) {
        var prev = null;
        var rows = a.history.map(function (t) {
          var dur = prev === null ? '' : ((t.at - prev) + ' ms'); prev = t.at;
          var restored = t.cause === 'restore' ? ' <b>(restore decision)</b>' : '';
          var cause = t.cause && /^([A-Za-z]+#[0-9]+|restore)$/.test(t.cause) ? '<a href="#" class="call" data-cause="' + esc(t.cause) + '">' + esc(t.cause) + '</a>' : esc(t.cause || '');
          return '<tr class="' + (t.error ? 'error' : '') + (t.cause === 'restore' ? ' restore' : '') + '" data-from="' + esc(t.from || '') + '" data-to="' + esc(t.to) + '"><td>' + new Date(t.at).toISOString() + '</td><td>' + esc(t.event) + restored + '</td><td>' + esc(t.from || '') +
            ' → ' + esc(t.to) + '</td><td>' + dur + '</td><td>' + cause + '</td><td>' + esc(t.error || '') + '</td></tr>';
        }).join('');
        var why = a.why ? '<div id="why"><p id="why-summary">' + esc(a.why.summary) + '</p><ul>' + a.why.details.map(function (d) { return '<li>' + esc(d) + '</li>'; }).join('') + '</ul></div>' : '';
        $('detail').innerHTML = '<h2 id="actor-title">' + esc(a.kind) + ' ' + esc(a.id.slice(0, 13)) + ' <span class="state ' + top(a.state) + '" id="actor-state">' + esc(a.state) + '</span></h2>' +
          why + drawChart(chart, a.state) + '<div id="timeline"></div>' + sessionsTable(a.sessions) +
          '<table id="history"><tr><th>time</th><th>event</th><th>from → to</th><th>after</th><th>cause</th><th>error</th></tr>' + rows + '</table>' +
          (a.historyBefore ? '<p><a href="#" id="older" data-before="' + a.historyBefore + '">older history</a></p>' : '') + (before ? '<p><a href="#" id="newest">newest history</a></p>' : '') +
          '<h3>context</h3><pre>' + esc(JSON.stringify(a.context, null, 2)) + '</pre>';
      });
    });
  }
  function sessionsTable(sessions) {
    if (!sessions) return '';
    if (!sessions.length) return '<p id="sessions">No streaming session open.</p>';
    return '<table id="sessions"><tr><th>open session</th><th>command / ports</th><th>client</th><th>protocol</th><th>tty</th><th>since</th></tr>' +
      sessions.map(function (s) {
        return '<tr><td>' + esc(s.kind) + '</td><td>' + esc(s.command || (s.ports || []).join(', ')) + '</td><td>' + esc(s.peer) + '</td><td>' + esc(s.protocol) + '</td><td>' + (s.tty ? 'yes' : 'no') + '</td><td>' + esc(s.since) + '</td></tr>';
      }).join('') + '</table>';
  }
  // Rows restore could not read (issue 13, item 7): kept aside with the reason, never restored.
  function renderQuarantine(rows) {
    $('quarantine').innerHTML = !rows.length ? '' : '<h2>Quarantined rows (' + rows.length + ')</h2><table>' +
      '<tr><th>kind</th><th>id</th><th>state</th><th>why</th></tr>' + rows.map(function (q) {
        return '<tr class="error" data-id="' + esc(q.id) + '"><td>' + esc(q.kind) + '</td><td>' + esc(q.id.slice(0, 13)) + '</td><td>' + esc(q.state) + '</td><td>' + esc(q.reason) + '</td></tr>';
      }).join('') + '</table>';
  }
  // Unmounts and deletes still to do after answered removals; a failing one says why.
  function renderCleanup(jobs) {
    $('cleanup').innerHTML = !jobs.length ? '' : '<h2>Cleanup left after removals (' + jobs.length + ')</h2><table>' +
      '<tr><th>kind</th><th>id</th><th>left</th><th>attempts</th><th>last error</th></tr>' + jobs.map(function (c) {
        return '<tr' + (c.lastError ? ' class="error"' : '') + ' data-id="' + esc(c.job.id) + '"><td>' + esc(c.job.kind) + '</td><td>' + esc(c.job.id.slice(0, 13)) + '</td><td>' +
          esc([c.job.rootfsDir || c.job.shm, c.job.netns].concat(c.job.dirs).filter(Boolean).join(', ')) + '</td><td>' + c.attempts + '</td><td>' + esc(c.lastError || '') + '</td></tr>';
      }).join('') + '</table>';
  }
  function refresh() {
    get('/api/quarantine').then(renderQuarantine);
    get('/api/cleanup').then(renderCleanup);
    return get('/api/actors').then(function (t) { tree = t; renderTree(); });
  }
  ['f-state', 'f-ns', 'f-label', 'f-search', 'f-error'].forEach(function (id) { $(id).oninput = renderTree; });
  // Paging the history: a link rendered with the detail, handled once here.
  $('detail').addEventListener('click', function (e) {
    var link = e.target;
    if (link.id === 'older') { e.preventDefault(); paged = link.dataset.before; showActor(paged); }
    if (link.id === 'newest') { e.preventDefault(); paged = null; showActor(); }
    if (link.classList && link.classList.contains('call')) { e.preventDefault(); showTimeline(link.dataset.cause); return; }
    // A history row: the edge it took, lit on the chart.
    var row = link.closest && link.closest('#history tr[data-to]');
    if (row) {
      Array.prototype.forEach.call(document.querySelectorAll('.edge-group.taken, #history tr.picked'), function (el) { el.classList.remove('taken'); el.classList.remove('picked'); });
      row.classList.add('picked');
      // The edge may leave or enter a compound state ("UNKNOWN>REMOVING" for UNKNOWN → REMOVING.containers).
      var within = function (state, node) { return state === node || state.indexOf(node + '.') === 0; };
      var edge = Array.prototype.find.call(document.querySelectorAll('.edge-group'), function (g) {
        var ends = g.dataset.edge.split('>');
        return within(row.dataset.from, ends[0]) && within(row.dataset.to, ends[1]);
      });
      if (edge) edge.classList.add('taken');
    }
  });
  // One CRI call's steps over every actor it touched, the slowest marked.
  function showTimeline(cause) {
    get('/api/calls/' + encodeURIComponent(cause)).then(function (tl) {
      var max = Math.max.apply(null, tl.steps.map(function (s) { return s.ms; }).concat([1]));
      $('timeline').innerHTML = '<h3>' + esc(cause) + ': ' + tl.steps.length + ' steps over ' + (tl.steps.length ? tl.steps[tl.steps.length - 1].offsetMs : 0) + ' ms</h3><table id="timeline-steps">' +
        '<tr><th>+ms</th><th>actor</th><th>event</th><th>from → to</th><th>took</th><th></th></tr>' + tl.steps.map(function (st, i) {
          return '<tr' + (i === tl.slowest ? ' class="slow"' : '') + '><td>' + st.offsetMs + '</td><td>' + esc(st.kind) + ' ' + esc(st.actorId.slice(0, 13)) + '</td><td>' + esc(st.event) + '</td><td>' +
            esc(st.from || '') + ' → ' + esc(st.to) + '</td><td>' + st.ms + ' ms</td><td><span class="bar" style="width:' + Math.round(120 * st.ms / max) + 'px"></span></td></tr>';
        }).join('') + '</table>';
    });
  }
  refresh().then(fromHash);
  var events = new EventSource(withToken('/api/events'));
  events.onmessage = function (m) {
    var t = JSON.parse(m.data);
    refresh();
    if (selected === t.actorId && !paged) showActor();
  };
  events.addEventListener('sessions', function (m) {
    if (selected === JSON.parse(m.data).actorId) showActor();
  });
})();
</script>
</body>
</html>
`;
