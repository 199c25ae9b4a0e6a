export * from './schema.ts';
export * from './database.ts';
export * from './constraints.ts';
export * from './errors.ts';
export * as events from './repositories/events.repository.ts';
export * as orders from './repositories/orders.repository.ts';
export * from './repositories/snapshot.repository.ts';
export * as lifecycle from './repositories/lifecycle.repository.ts';
export { OrderWriter, insertOrders, withdrawOrders, ORDER_BATCH_MAX } from './repositories/order-writer.ts';
