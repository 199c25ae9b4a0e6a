export * from './errors.ts';
export * from './buyer-token.ts';
export * from './confirm.ts';
export * from './ids.ts';
export * from './order.ts';
export * from './order-machine.ts';
export * from './rush.ts';
export * from './rush-tokens.ts';
