/**
 * Child process of draft-kill.test.ts: opens the store at `argv[2]`, stores one payment offline
 * (committed), then takes a second one as far as it goes before its decision — started, card read
 * with sealed card data, PIN requested — and says `ready` on stdout. The test then kills it with
 * SIGKILL: the second payment is a draft in memory only.
 */
import { PaymentStore } from '../../store-forward/payment-store.js';
import { newPayment, sealedBlob, tokenFor } from './helpers.js';

const store = PaymentStore.open({ path: process.argv[2] as string });
const policy = {
  perTransactionLimitMinor: { EUR: 10_000 },
  totalLimitMinor: { EUR: 500_000 },
  maxCount: 500,
  forwardingDeadlineHours: 72,
  warningBeforeDeadlineHours: 12,
};
const take = (key: string, seed: number) => {
  const { payment } = store.startPayment({
    idempotencyKey: key,
    amountMinor: 1000 + seed,
    currency: 'EUR',
    offlineMode: 'prefer_online',
  });
  store.recordCardRead(
    payment.id,
    { ...newPayment('x').card, token: tokenFor(seed) },
    { sealed: sealedBlob(seed) },
  );
  return payment.id;
};
store.storeOffline(take('kept-1', 1), policy, { ambiguous: false });
const draft = take('draft-1', 2);
store.recordStep(draft, 'pin_requested');
process.stdout.write(`ready ${draft}\n`);
// Held open until the kill: the draft lives only in this process's memory.
setInterval(() => undefined, 60_000);
