/** The V8 flag for the engine the database (a URL or a SQLite path) names. */
export function youngGeneration(db: string): string;
