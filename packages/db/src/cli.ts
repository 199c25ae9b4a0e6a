/** `npm run migrate`: creates the database if missing and applies migrations; exits non-zero on failure. */
import { loadConfig } from '@dropgate/config';
import { openDatabase } from './database.ts';

try {
  const config = loadConfig();
  const db = await openDatabase(config.databaseUrl);
  await db.destroy();
  console.log('migrations applied');
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
}
