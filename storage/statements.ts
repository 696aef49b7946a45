/** Statements prepared once per SQL text (issue 14): preparing is a parse and a plan, on every call otherwise. */
import type { Database, Statement } from 'better-sqlite3';

/**
 * Gotcha: a cached statement keeps its modes (`pluck()`), so one SQL text must always be used in
 * the same mode. Every caller here that plucks does so for each use of its text.
 */
export function statementCache(db: Database): (text: string) => Statement {
  const statements = new Map<string, Statement>();
  return (text) => {
    let statement = statements.get(text);
    if (!statement) statements.set(text, (statement = db.prepare(text)));
    return statement;
  };
}
