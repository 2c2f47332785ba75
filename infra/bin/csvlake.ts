#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { CsvlakeStack } from '../lib/csvlake-stack';
import { settingsFromContext } from '../lib/settings';

const app = new App();
// `-c bundle=false` synthesizes without building the functions (the CLI refuses `aws:` keys on
// its command line): for a look at the template, or a machine without cargo-lambda.
const bundle: unknown = app.node.tryGetContext('bundle');
if (bundle === false || bundle === 'false') app.node.setContext('aws:cdk:bundling-stacks', []);

new CsvlakeStack(app, app.node.tryGetContext('stackName') ?? 'Csvlake', {
  description: 'csvlake: CSV objects in S3 to Parquet and Avro',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  ...settingsFromContext(app.node),
});
