/**
 * The public surface of store-and-forward (DESIGN §4) for `agent/`: the store, its types, its
 * error codes, and the input checks the local API may reuse to answer 400 before calling it.
 */
export { PaymentStore, type PaymentStoreOptions } from './payment-store.js';
export * from './model.js';
export { STORE_ERRORS, type StoreErrorCode } from './errors.js';
export { checkIdempotencyKey, checkCurrency } from './validate.js';
export { SCHEMA_VERSION } from './migrations.js';
export { PAYMENT_TRANSITIONS } from './payment-machine.js';
