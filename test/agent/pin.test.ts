/**
 * The online PIN path (issue 3 §2, §3; architecture.md §3.2 messages 30/31/39) with real parts: a card
 * whose entry mode is in `authorization.onlinePinEntryModes` makes the agent ask the virtual PIN
 * pad for a PIN (message 30); a 31 puts the encrypted PIN block into the `up/auth` request (read
 * off the broker and opened with the device key); a 39 declines with a named reason; offline,
 * such a card is declined `online_pin_required`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyId, openEnvelope } from '../../cloud-sync/envelope.js';
import { MqttSession } from '../../cloud-sync/mqtt-session.js';
import { AuthRequestSchema, type AuthRequest } from '../../cloud-sync/schemas.js';
import type { TerminalPrompt } from '../../agent/payment-service.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig;
let prompts: TerminalPrompt[];
beforeEach(async () => {
  rig = await startRig({
    authorization: { timeoutMs: 5000, onlinePinEntryModes: ['chip'] },
  });
  prompts = [];
  rig.agent.payments.on('prompt', (p: TerminalPrompt) => prompts.push(p));
});
afterEach(async () => {
  await rig?.dispose();
});

describe('online PIN', () => {
  it('asks the pad for a PIN (30) and sends the encrypted PIN block (31) with the authorization', async () => {
    const listener = new MqttSession({ url: rig.broker.url, clientId: 'pin-test-listener' });
    const requests: AuthRequest[] = [];
    const kid = keyId(rig.devicePublicKey);
    listener.on('message', (_topic, payload) => {
      requests.push(
        openEnvelope(
          payload,
          { keys: (k) => (k === kid ? rig.devicePublicKey : undefined) },
          AuthRequestSchema,
        ),
      );
    });
    listener.connect();
    await listener.whenConnected();
    await listener.subscribe(`pos/v1/${rig.deviceId}/up/auth`);
    try {
      const { status, json } = await rig.pay('pin-ok-00000001', { amount: 4200, currency: 'EUR' });
      expect(status).toBe(201);
      expect(json).toMatchObject({ state: 'approved', approval: 'online' });
      const ids = rig.pad.received.map((m) => m.id);
      expect(ids).toContain('30');
      expect(ids.indexOf('30')).toBeGreaterThan(ids.indexOf('20'));
      await rig.waitFor(() => requests.length === 1);
      expect(requests[0]?.key).toBe('pin-ok-00000001');
      expect(requests[0]?.pinBlock?.pinBlockHex).toMatch(/^[0-9A-F]{16}$/);
      expect(prompts.map((p) => p.kind)).toEqual([
        'present_card',
        'enter_pin',
        'authorizing',
        'approved_online',
      ]);
      const events = rig.agent.store.listEvents(String(json.id)).map((e) => e.type);
      expect(events).toEqual([
        'payment_started',
        'card_read',
        'pin_requested',
        'authorization_requested',
        'approved',
      ]);
    } finally {
      await listener.end({ force: true });
    }
  });

  it('a PIN entry canceled on the pad (39) is declined with a named reason, nothing sent to the cloud', async () => {
    rig.pad.setPinResult('canceled');
    const { json } = await rig.pay('pin-cancel-0001', { amount: 4200, currency: 'EUR' });
    expect(json).toMatchObject({ state: 'declined', declineCode: 'pin_canceled' });
    expect(String(json.reason)).toContain('no PIN entered (canceled)');
    expect(rig.cloud.counters().authRequests).toBe(0);
    expect(prompts.at(-1)).toMatchObject({
      kind: 'declined',
      code: 'pin_canceled',
      text: 'Declined — the PIN entry was canceled',
    });
  });

  it('offline, a card that needs online PIN is declined online_pin_required without asking for a PIN', async () => {
    await rig.broker.stop();
    await rig.waitFor(() => !rig.agent.worker.online);
    const { json } = await rig.pay('pin-offline-001', { amount: 1000, currency: 'EUR' });
    expect(json).toMatchObject({ state: 'declined', declineCode: 'online_pin_required' });
    expect(rig.pad.received.map((m) => m.id)).not.toContain('30');
    expect(rig.agent.store.offlineExposure().count).toBe(0);
  });
});
