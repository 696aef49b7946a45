/** The page's script is JavaScript that parses: a template-literal escape gone wrong breaks the whole page. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Script } from 'node:vm';
import { INSPECTOR_PAGE } from './page.js';

test('the inspector page script parses', () => {
  const script = INSPECTOR_PAGE.split('<script>')[1]?.split('</script>')[0] ?? '';
  assert.ok(script.length > 1000, 'the script is there');
  // Compiled, not run: a syntax error would leave the page blank.
  assert.doesNotThrow(() => new Script(script, { filename: 'inspector-page.js' }));
});
