// The set-up most integration files share: a CSMS emulator holding the file's secrets (with
// one project and key pair, signatures checked), a kubelet root, and drivers started on
// them, all taken down after the file. What a file spells out is only what it tests.
// node:test runs a file's top-level `before` hooks concurrently, so a file's own `before`
// awaits `ready` before it uses the driver.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { CsmsEmulator } from '../../src/emulator/server.js';
import type { EmulatorSeed } from '../../src/emulator/store.js';
import { DriverProcess, unmountAll, type DriverOptions } from './driver.js';

/** The CSMS project and key pair of every test's emulator and driver. */
export const TEST_PROJECT_ID = '5f1e2d3c4b5a69788796a5b4c3d2e1f0';
export const TEST_CREDS = { accessKey: 'TESTACCESSKEY', secretKey: 'test-secret-key' };
/** TEST_CREDS as the driver's environment gives them. */
export const TEST_CREDS_ENV = { HUAWEICLOUD_SDK_AK: TEST_CREDS.accessKey, HUAWEICLOUD_SDK_SK: TEST_CREDS.secretKey };

export type DriverStart = Omit<DriverOptions, 'csmsEndpoint' | 'projectId'> & {
  /** With false, resolves once Probe answers at all (a driver that cannot become ready). */
  ready?: boolean;
};

export interface DriverFixture {
  readonly emulator: CsmsEmulator;
  /** The kubelet root every driver of the file shares unless told otherwise. */
  readonly kubeletRoot: string;
  /** Settles once the emulator listens and the asked-for driver is ready (or failed to be). */
  readonly ready: Promise<void>;
  /** The emulator's URL, once `ready`. */
  readonly endpoint: string;
  /** The driver `withDriver` started for `driver`; undefined when none was asked for. */
  readonly driver: DriverProcess;
  /** Starts one more driver on the same CSMS and credentials; it is stopped after the file. */
  start(opts: DriverStart): Promise<DriverProcess>;
}

export function withDriver(opts: {
  secrets: EmulatorSeed['secrets'];
  /** The driver started before the file's tests, if any. */
  driver?: DriverStart;
  /** Names the kubelet root's temporary folder. */
  name: string;
}): DriverFixture {
  const emulator = new CsmsEmulator({ projectId: TEST_PROJECT_ID, credentials: [TEST_CREDS], secrets: opts.secrets });
  const kubeletRoot = mkdtempSync(join(tmpdir(), `cce-${opts.name}-kubelet-`));
  const started: DriverProcess[] = [];
  let endpoint: string | undefined;
  let first: DriverProcess | undefined;
  let isReady!: () => void;
  let failed!: (err: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => {
    isReady = resolve;
    failed = reject;
  });
  // The fixture's own hook reports the failure; a file that never awaits `ready` must not crash on it.
  ready.catch(() => undefined);

  const fixture: DriverFixture = {
    emulator,
    kubeletRoot,
    ready,
    get endpoint() {
      if (!endpoint) throw new Error('the CSMS emulator is not listening yet (use it from a test or a before hook)');
      return endpoint;
    },
    get driver() {
      if (!first) throw new Error('withDriver was given no `driver` to start');
      return first;
    },
    async start({ ready, ...rest }) {
      const d = new DriverProcess({
        kubeletRoot,
        ...rest,
        env: { ...TEST_CREDS_ENV, ...rest.env },
        csmsEndpoint: fixture.endpoint,
        projectId: TEST_PROJECT_ID,
      });
      started.push(d);
      await d.start({ ready });
      return d;
    },
  };

  before(async () => {
    try {
      endpoint = await emulator.listen();
      if (opts.driver) first = await fixture.start(opts.driver);
      isReady();
    } catch (err) {
      failed(err);
      throw err;
    }
  });
  after(async () => {
    await Promise.all(started.map((d) => d.stop()));
    await emulator.close();
    unmountAll(kubeletRoot);
  });
  return fixture;
}
