/**
 * The configurations the scanners check the stack in: cdk-nag (test/nag.test.ts) and cfn-lint
 * (over the templates that `npm run synth:variants` writes, in the test command), the defaults
 * and every optional setting on or off at least once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CsvlakeStackProps } from '../lib/csvlake-stack';
import { synth } from './synth';

/** Each configuration, by a name that is also the folder of its template. */
export const CONFIGURATIONS: Readonly<Record<string, CsvlakeStackProps>> = {
  defaults: {},
  'every-option-on': {
    schedule: 'cron(0 2 * * ? *)',
    scheduleTimeZone: 'Europe/Paris',
    alarmEmail: 'ops@example.com',
    tracing: true,
    versioned: true,
    converterMemoryMiB: 4096,
    converterReservedConcurrency: 300,
    maxConcurrency: 300,
    apiGatewayCloudWatchRole: true,
    logRetentionDays: 365,
    runTimeoutHours: 6,
  },
  'versioning-and-access-logs-off': { versioned: false, serverAccessLogs: false, logRetentionDays: 9999 },
  'existing-access-logs-bucket': { serverAccessLogsBucket: 'central-access-logs', outputBucketName: 'lake' },
  'imported-buckets': { inputBucketName: 'raw', outputBucketName: 'lake', inputPrefix: 'in', outputPrefix: '', schedule: 'rate(1 hour)' },
};

/**
 * `ts-node test/configurations.ts <dir>`: writes the template of each configuration to
 * `<dir>/<name>/Csvlake.template.json`, without building the functions.
 */
if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: ts-node test/configurations.ts <output dir>');
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [name, props] of Object.entries(CONFIGURATIONS)) {
    const { template } = synth(props);
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.writeFileSync(path.join(dir, name, 'Csvlake.template.json'), `${JSON.stringify(template.toJSON(), null, 1)}\n`);
  }
  console.log(`${Object.keys(CONFIGURATIONS).length} templates in ${dir}`);
}
