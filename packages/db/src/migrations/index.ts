/** Every migration, by sortable name. Migrations are frozen once released: add a new one instead. */
import type { Migration } from 'kysely/migration';
import * as initial from './0001_initial.ts';

export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
};
