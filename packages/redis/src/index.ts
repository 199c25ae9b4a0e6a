export * from './keys.ts';
export * from './scripts.ts';
export * from './hold-store.ts';
export * from './connection.ts';
export * from './errors.ts';
