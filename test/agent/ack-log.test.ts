/**
 * Issue 9: the agent logged one `cloud acknowledged` line per record, ~10-15 % of the drain's CPU.
 * It now logs one line per ack message that still names every key, so a payment is found in the
 * log by its idempotency key, and lists apart what the cloud did not simply accept.
 */
import { describe, expect, it } from 'vitest';
import { ackLogFields } from '../../agent/start-sync.js';

describe('the cloud acknowledged log line', () => {
  it('counts by status and outcome, names every key, lists what was not accepted', () => {
    const fields = ackLogFields([
      { key: 'k-1', status: 'accepted', outcome: 'approved' },
      { key: 'k-2', status: 'accepted', outcome: 'declined' },
      { key: 'k-3', status: 'duplicate', outcome: 'approved' },
      { key: 'k-4', status: 'rejected', code: 'sealed_card_unreadable' },
    ]);
    expect(fields).toEqual({
      records: 4,
      byStatus: { accepted: 2, duplicate: 1, rejected: 1 },
      byOutcome: { approved: 2, declined: 1 },
      idempotencyKeys: ['k-1', 'k-2', 'k-3', 'k-4'],
      notAccepted: [
        { idempotencyKey: 'k-3', status: 'duplicate' },
        { idempotencyKey: 'k-4', status: 'rejected', code: 'sealed_card_unreadable' },
      ],
    });
  });

  it('has no notAccepted list when the cloud accepted everything', () => {
    expect(
      ackLogFields([{ key: 'k-1', status: 'accepted', outcome: 'approved' }]),
    ).not.toHaveProperty('notAccepted');
  });
});
