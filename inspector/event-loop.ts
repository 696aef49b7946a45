/**
 * The daemon's event-loop delay on /metrics (issue 12, item 10: no request may block the loop for
 * more than 50 ms). Node's own histogram (perf_hooks.monitorEventLoopDelay, sampled every 10 ms)
 * gives the worst delay since start and the p99. `max_since_scrape` is the worst since the previous
 * scrape (as prom-client's nodejs_eventloop_lag_max_seconds): the soak scrapes around each hostile
 * case to learn what that one request cost the loop.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { ScrapedGauge } from './metrics.js';

/**
 * How much of the time since start the loop was busy (0..1). A delay is one task holding the loop
 * only when the loop is mostly idle; near 1, delays are calls queueing behind each other (load).
 */
export function eventLoopUtilizationGauge(): ScrapedGauge {
  return {
    name: 'podchart_event_loop_utilization',
    help: 'Share of the time since the daemon started that its event loop was busy (0 to 1).',
    labelNames: [],
    sample: () => [{ labels: {}, value: performance.eventLoopUtilization().utilization }],
  };
}

export function eventLoopGauge(): ScrapedGauge {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  const sinceScrape = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  sinceScrape.enable();
  const help = 'Event-loop delay since the daemon started (the worst, and the 50th and 99th percentiles), and the worst since the previous scrape.';
  return { name: 'podchart_event_loop_delay_seconds', help, labelNames: ['stat'], sample: () => {
    // An empty histogram's max is 0 and its min a huge sentinel: report 0, not garbage.
    const recent = sinceScrape.count > 0 ? sinceScrape.max / 1e9 : 0;
    sinceScrape.reset();
    return [
      { labels: { stat: 'max' }, value: histogram.max / 1e9 },
      { labels: { stat: 'p50' }, value: histogram.percentile(50) / 1e9 },
      { labels: { stat: 'p99' }, value: histogram.percentile(99) / 1e9 },
      { labels: { stat: 'max_since_scrape' }, value: recent },
    ];
  } };
}
