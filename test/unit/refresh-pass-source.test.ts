// RefreshPassSource: one read per distinct secret in a pass, bounded concurrency, slowing down when throttled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CsmsClient } from '../../src/provider/csms-client.js';
import { CsmsEmulator } from '../../src/emulator/server.js';
import { CsmsSecretSource } from '../../src/provider/csms-secret-source.js';
import { RefreshPassSource } from '../../src/provider/refresh-pass-source.js';

const projectId = 'aaaabbbbccccddddeeeeffff00001111';
const creds = { accessKey: 'SHAREDAK', secretKey: 'shared-sk' };

describe('RefreshPassSource (one rotation cycle)', () => {
  const emulator = new CsmsEmulator({
    projectId,
    credentials: [creds],
    secrets: Array.from({ length: 10 }, (_, i) => ({ name: `s${i}`, versions: [`v-${i}`] })),
  });
  let endpoint: string;
  let client: CsmsClient;
  before(async () => {
    endpoint = await emulator.listen();
    client = new CsmsClient({ endpoint, projectId, backoffBaseMs: 5, backoffCapMs: 10 });
  });
  after(() => emulator.close());

  it('reads each distinct secret once however many volumes ask', async () => {
    const shared = new RefreshPassSource(new CsmsSecretSource(client));
    const before = emulator.store.total;
    const asks = Array.from({ length: 200 }, (_, i) =>
      shared.fetch([{ name: `s${i % 10}`, version: 'latest' }], creds),
    );
    const values = await Promise.all(asks);
    assert.equal(emulator.store.total - before, 10);
    assert.equal(values[13][0].value.toString(), 'v-3');
    assert.equal(shared.reads, 10);
  });

  it('keeps at most `concurrency` reads in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const slow = {
      fetch: async (o: { name: string }[]) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        return [{ name: o[0].name, versionId: 'v1', value: Buffer.from('x') }];
      },
    };
    const shared = new RefreshPassSource(slow, { concurrency: 3 });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => shared.fetch([{ name: `n${i}`, version: 'latest' }], creds)),
    );
    assert.equal(peak, 3);
  });

  it('slows down and retries when CSMS keeps throttling, instead of failing', async () => {
    const shared = new RefreshPassSource(
      new CsmsSecretSource(new CsmsClient({ endpoint, projectId, maxAttempts: 2, backoffBaseMs: 5, backoffCapMs: 5 })),
      { concurrency: 4, throttlePauseMs: 20 },
    );
    emulator.store.addFault({ status: 429, secret: 's1', times: 3 });
    const [v] = await shared.fetch([{ name: 's1', version: 'latest' }], creds);
    assert.equal(v.value.toString(), 'v-1');
    assert.equal(shared.reads, 2, 'one throttled read, then one after slowing down');
  });
});
