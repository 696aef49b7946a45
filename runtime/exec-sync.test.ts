/** Which processes a timed-out exec owns, read from one /proc table (the e2e tests kill real ones). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { execProcesses } from './exec-sync.js';
import type { ProcessEntry } from '../host/process.js';

const RUNC = 100;
const LEADER = 200;

function table(...rows: [pid: number, ppid: number, session: number, state?: string][]): Map<number, ProcessEntry> {
  return new Map(rows.map(([pid, ppid, session, state = 'S']) => [pid, { pid, ppid, pgrp: session, session, state }]));
}
const everywhere = (): boolean => true;

describe('execProcesses', () => {
  test('the command, its session and the descendants of both; zombies and strangers left out', () => {
    const t = table(
      [1, 0, 1], // host init
      [RUNC, 50, 50], // runc exec, in the daemon's session
      [LEADER, RUNC, LEADER], // sh -c '…'
      [201, LEADER, LEADER], // sleep & (background job)
      [202, 7, LEADER], // orphaned to the container's pid 1, still in the session
      [203, LEADER, 203], // setsid sleep: left the session, still the command's child
      [204, 203, 203], // its child
      [205, LEADER, LEADER, 'Z'], // already dead
      [300, 1, 300], // unrelated
    );
    assert.deepEqual(execProcesses(t, { leader: LEADER, runc: RUNC }, everywhere), [LEADER, 201, 202, 203, 204]);
  });

  test('once the command is gone, its session members count only inside the container', () => {
    const t = table([RUNC, 50, 50], [201, 7, LEADER], [202, 201, LEADER], [400, 1, LEADER]);
    const inContainer = (pid: number): boolean => pid !== 400;
    assert.deepEqual(execProcesses(t, { leader: LEADER, runc: RUNC }, inContainer), [201, 202]);
  });

  test('a reused pid that is not runc\'s child is not taken for the command', () => {
    const t = table([RUNC, 50, 50], [LEADER, 1, 9], [201, LEADER, 9]);
    assert.deepEqual(execProcesses(t, { leader: LEADER, runc: RUNC }, everywhere), []);
  });
});
