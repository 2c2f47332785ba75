/** Settings from context and their checks. */
import { App } from 'aws-cdk-lib';
import { normalizePrefix, resolveSettings, settingsFromContext } from '../lib/settings';
import { synth } from './synth';

test('context values given as strings on the command line become numbers and booleans', () => {
  const app = new App({
    context: {
      inputBucket: 'raw',
      outputBucket: 'lake',
      inputPrefix: 'in/',
      converterMemory: '4096',
      versioned: 'true',
      tracing: 'false',
      schedule: 'rate(1 hour)',
      logRetentionDays: 90,
      runTimeoutHours: '48',
      maxConcurrency: '250',
      serverAccessLogs: 'false',
      serverAccessLogsBucket: 'central-logs',
      apiGatewayCloudWatchRole: 'true',
    },
  });
  expect(settingsFromContext(app.node)).toEqual({
    inputBucketName: 'raw',
    outputBucketName: 'lake',
    inputPrefix: 'in/',
    converterMemoryMiB: 4096,
    versioned: true,
    tracing: false,
    schedule: 'rate(1 hour)',
    logRetentionDays: 90,
    runTimeoutHours: 48,
    maxConcurrency: 250,
    serverAccessLogs: false,
    serverAccessLogsBucket: 'central-logs',
    apiGatewayCloudWatchRole: true,
  });
});

test.each([
  [{ converterMemory: 'lots' }, /converterMemory: expected an integer/],
  [{ versioned: 'yes' }, /versioned: expected true or false/],
  [{ runTimeoutHours: '1.5' }, /runTimeoutHours: expected an integer/],
  [{ maxConcurrency: 'many' }, /maxConcurrency: expected an integer/],
  [{ serverAccessLogs: 'on' }, /serverAccessLogs: expected true or false/],
])('a context value that does not parse is named: %p', (context, message) => {
  const app = new App({ context });
  expect(() => settingsFromContext(app.node)).toThrow(message);
});

test('prefixes end in one slash, or are empty', () => {
  expect(normalizePrefix('p', '')).toBe('');
  expect(normalizePrefix('p', 'landing')).toBe('landing/');
  expect(normalizePrefix('p', 'a/b/')).toBe('a/b/');
  expect(() => normalizePrefix('p', '/abs')).toThrow(/must not start with/);
  expect(() => normalizePrefix('p', 'a*')).toThrow(/must not/);
});

test('defaults', () => {
  expect(resolveSettings({})).toEqual({
    inputPrefix: 'landing/',
    outputPrefix: 'converted/',
    inputVersioned: true,
    outputVersioned: false,
    converterMemoryMiB: 2048,
    maxConcurrency: 100,
    tracing: false,
    logRetention: 30,
    runTimeoutHours: 24,
    serverAccessLogs: true,
    apiGatewayCloudWatchRole: false,
  });
});

test('versioned: unset versions the input bucket only, true both, false neither', () => {
  const versions = (versioned?: boolean) => {
    const { inputVersioned, outputVersioned } = resolveSettings({ versioned });
    return [inputVersioned, outputVersioned];
  };
  expect(versions(undefined)).toEqual([true, false]);
  expect(versions(true)).toEqual([true, true]);
  expect(versions(false)).toEqual([false, false]);
});

test.each([
  [{ schedule: '0 2 * * *' }, /expected cron\(\.\.\.\) or rate\(\.\.\.\)/],
  [{ inputBucketName: 'one', outputBucketName: 'one', inputPrefix: '', outputPrefix: 'converted/' }, /overlap/],
  [{ logRetentionDays: 31 }, /logRetentionDays 31/],
  [{ runTimeoutHours: 0 }, /runTimeoutHours 0: expected whole hours from 1 to 8760/],
  [{ runTimeoutHours: 8761 }, /runTimeoutHours 8761/],
  [{ runTimeoutHours: 1.5 }, /runTimeoutHours 1.5/],
  [{ maxConcurrency: 0 }, /maxConcurrency 0: expected an integer from 1 to 10000/],
  [{ maxConcurrency: 10001 }, /maxConcurrency 10001/],
  [{ maxConcurrency: 2.5 }, /maxConcurrency 2.5/],
  [{ converterReservedConcurrency: 99, maxConcurrency: 100 }, /converterReservedConcurrency 99 is below maxConcurrency 100/],
  [{ serverAccessLogsBucket: 'logs', serverAccessLogs: false }, /serverAccessLogsBucket is set but serverAccessLogs is false/],
  [{ serverAccessLogsBucket: 'logs', inputBucketName: 'raw', outputBucketName: 'lake' }, /serverAccessLogsBucket: the stack creates no bucket/],
])('refuses %p', (settings, message) => {
  expect(() => synth(settings)).toThrow(message);
});
