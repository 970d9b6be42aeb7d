// The young generation's cap the agentq command gives its long-running
// processes (see agentq.js), by the engine a database URL names. The benches
// run their worker processes with the same flags.

/** The V8 flag for the engine the database (a URL or a SQLite path) names. */
export function youngGeneration(db) {
  return /^postgres(ql)?:\/\//i.test(db.trim()) ? '--max-semi-space-size=16' : '--max-semi-space-size=4';
}
