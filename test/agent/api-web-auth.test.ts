/**
 * The status page's sign-in and the API's origin rules (issue 13), on a real agent over HTTP:
 * a one-time login code (from `POST /v1/login-codes`, what `pos-agent open` prints) becomes an
 * HttpOnly, SameSite=Strict session cookie; the bearer token never reaches the browser; a
 * cross-origin request or a foreign Host (DNS rebinding) is refused whatever it carries. Before,
 * a browser could not use the API at all (EventSource cannot send the token header).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTRACT_FILES } from '../../agent/contracts.js';
import { APP_CSS, APP_JS, PAGE_HTML, SIGN_IN_HTML } from '../../agent/web/assets.js';
import { LOGIN_CODE_TTL_MS, SESSION_TTL_MS, WebSessions } from '../../agent/web-auth.js';
import { startRig, type Rig } from '../e2e/payment-rig.js';

let rig: Rig;
beforeEach(async () => {
  rig = await startRig();
});
afterEach(async () => {
  await rig?.dispose();
});

/** One HTTP request with exactly these headers (fetch would not let a test set Host). */
function raw(
  method: string,
  route: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}> {
  const url = new URL(route, rig.agent.apiUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function login(): Promise<string> {
  const issued = await rig.request('POST', '/v1/login-codes');
  expect(issued.status).toBe(201);
  const url = new URL(String(issued.json.url));
  const opened = await raw('GET', `${url.pathname}${url.search}`);
  expect(opened.status).toBe(303);
  const cookie = String(opened.headers['set-cookie']);
  return cookie.split(';')[0] as string;
}

describe('status page sign-in', () => {
  it('a one-time code opens an HttpOnly, SameSite=Strict session; the code works once', async () => {
    const issued = await rig.request('POST', '/v1/login-codes');
    expect(issued.status).toBe(201);
    const url = new URL(String(issued.json.url));
    expect(url.pathname).toBe('/login');
    expect(url.href).not.toContain(rig.agent.apiToken);
    const opened = await raw('GET', `${url.pathname}${url.search}`);
    expect(opened.status).toBe(303);
    expect(opened.headers.location).toBe('/');
    const setCookie = String(opened.headers['set-cookie']);
    expect(setCookie).toMatch(/^pos_agent_session=[A-Za-z0-9_-]{43}; /);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    const cookie = setCookie.split(';')[0] as string;

    const reused = await raw('GET', `${url.pathname}${url.search}`);
    expect(reused.status).toBe(401);
    expect(reused.headers['set-cookie']).toBeUndefined();

    const page = await raw('GET', '/', { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('/ui/app.js');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    const status = await raw('GET', '/v1/status', { cookie });
    expect(status.status).toBe(200);
    expect(JSON.parse(status.text)).toMatchObject({ deviceId: rig.deviceId });
  });

  it('without a session the page says how to sign in, and the API answers 401', async () => {
    const page = await raw('GET', '/');
    expect(page.status).toBe(401);
    expect(page.text).toContain('pos-agent open');
    const stale = await raw('GET', '/v1/status', { cookie: 'pos_agent_session=not-a-session' });
    expect(stale.status).toBe(401);
    expect(JSON.parse(stale.text).error.code).toBe('POS408');
  });

  it("the browser's own /favicon.ico is not a failed sign-in (204, no POS401 counted)", async () => {
    for (let i = 0; i < 4; i++) expect((await raw('GET', '/favicon.ico')).status).toBe(204);
    const metrics = await rig.request('GET', '/metrics');
    expect(metrics.text).toContain('pos_agent_api_auth_refused_total{code="POS401"} 0');
    expect(metrics.text).toContain('pos_agent_api_auth_refused_total{code="POS402"} 0');
  });

  it('a session cannot mint login codes: that needs the bearer token', async () => {
    const cookie = await login();
    const minted = await raw('POST', '/v1/login-codes', { cookie });
    expect(minted.status).toBe(401);
  });

  it('the bearer token is in no file the browser gets', async () => {
    for (const file of [PAGE_HTML, SIGN_IN_HTML, APP_JS, APP_CSS]) {
      expect(file).not.toContain(rig.agent.apiToken);
    }
    const cookie = await login();
    for (const route of ['/', '/ui/app.js', '/ui/app.css']) {
      const answer = await raw('GET', route, { cookie });
      expect(answer.status, route).toBe(200);
      expect(answer.text, route).not.toContain(rig.agent.apiToken);
    }
  });
});

describe('origin rules of the API', () => {
  it('refuses a cross-origin browser request even with the right token (403 POS407)', async () => {
    const token = { authorization: `Bearer ${rig.agent.apiToken}` };
    const evil = await raw('GET', '/v1/status', { ...token, origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.text).error.code).toBe('POS407');
    const crossSite = await raw('GET', '/v1/status', { ...token, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const host = new URL(rig.agent.apiUrl).host;
    const same = await raw('GET', '/v1/status', { ...token, origin: `http://${host}` });
    expect(same.status).toBe(200);
    // The POS app sends no Origin at all.
    expect((await raw('GET', '/v1/status', token)).status).toBe(200);
  });

  it('a session cookie under a foreign Host (DNS rebinding) is refused', async () => {
    const cookie = await login();
    const port = new URL(rig.agent.apiUrl).port;
    const rebound = await raw('GET', '/v1/status', { cookie, host: `evil.example:${port}` });
    expect(rebound.status).toBe(401);
    const local = await raw('GET', '/v1/status', { cookie, host: `localhost:${port}` });
    expect(local.status).toBe(200);
  });

  it('serves /openapi.json without a token, the same as docs/openapi.json', async () => {
    const answer = await raw('GET', '/openapi.json');
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual(
      JSON.parse(readFileSync(CONTRACT_FILES.openapi, 'utf8')),
    );
  });
});

describe('WebSessions (fake clock)', () => {
  it('a code expires after LOGIN_CODE_TTL_MS, a session after SESSION_TTL_MS', () => {
    let now = 1_000_000;
    const sessions = new WebSessions({ now: () => now });
    const late = sessions.issueCode();
    now += LOGIN_CODE_TTL_MS;
    expect(sessions.redeem(late.code)).toBeUndefined();
    const fresh = sessions.issueCode();
    now += LOGIN_CODE_TTL_MS - 1;
    const opened = sessions.redeem(fresh.code);
    expect(opened).toBeDefined();
    const id = opened?.sessionId ?? '';
    expect(sessions.valid(id)).toBe(true);
    now += SESSION_TTL_MS - 1;
    expect(sessions.valid(id)).toBe(true);
    now += 1;
    expect(sessions.valid(id)).toBe(false);
    expect(sessions.valid('made-up')).toBe(false);
  });
});
