/**
 * The Glue Data Catalog database that the reducer registers the tables in (the `catalogDatabase`
 * setting): created by the stack when `createCatalogDatabase` is true, and the reducer's rights
 * over it and its tables.
 */
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { acknowledgeWildcards } from './nag';

/** Props of the catalog. */
export interface CatalogProps {
  /** The database's name (checked by the settings). */
  readonly databaseName: string;
  /** Whether the stack creates the database; otherwise it must exist. */
  readonly createDatabase: boolean;
  /** The function that registers the tables. */
  readonly reducer: lambda.Function;
}

/** The reducer's Glue database. */
export class Catalog extends Construct {
  /** The database's name. */
  public readonly databaseName: string;
  /** The database, when the stack creates it. */
  public readonly database?: glue.CfnDatabase;
  /** The account's Data Catalog in the stack's region. */
  public readonly catalogArn: string;
  /** The database's ARN. */
  public readonly databaseArn: string;
  /** The ARN of every table of the database. */
  public readonly tablesArn: string;

  constructor(scope: Construct, id: string, props: CatalogProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.databaseName = props.databaseName;
    this.catalogArn = stack.formatArn({ service: 'glue', resource: 'catalog' });
    this.databaseArn = stack.formatArn({
      service: 'glue',
      resource: 'database',
      resourceName: props.databaseName,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    this.tablesArn = stack.formatArn({
      service: 'glue',
      resource: 'table',
      resourceName: `${props.databaseName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    if (props.createDatabase) {
      this.database = new glue.CfnDatabase(this, 'Database', {
        catalogId: stack.account,
        databaseInput: {
          name: props.databaseName,
          description: `csvlake: the tables of the stack ${stack.stackName}, registered by its reducer`,
        },
      });
      // The tables that runs registered in it are not the stack's: deleting the stack keeps the
      // database, and them.
      this.database.applyRemovalPolicy(RemovalPolicy.RETAIN);
    }

    // The reducer reads each table (GetTable), then creates or updates it. Glue authorizes a
    // table action on the catalog, the database and the table alike, so each ARN is a resource
    // of it. Nothing of any other database, and no deletion.
    props.reducer.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['glue:GetDatabase'], resources: [this.catalogArn, this.databaseArn] }),
    );
    props.reducer.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['glue:GetTable', 'glue:CreateTable', 'glue:UpdateTable'],
        resources: [this.catalogArn, this.databaseArn, this.tablesArn],
      }),
    );
    acknowledgeWildcards(
      props.reducer.role!,
      [this.tablesArn],
      "the reducer's role: it reads, creates and updates the Glue tables of the catalog database, <table> and " +
        '<table>_avro, whose names are made at run time from the table folders that each run finds under the input prefix, ' +
        'so IAM can name them only as table/<database>/*, this database\'s alone',
    );
  }
}
