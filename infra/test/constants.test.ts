/** The names the stack shares with the functions come from constants.json, whole. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SHARED_NAMES, loadSharedNames } from '../lib/constants';
import { CONSTANTS_FILE } from '../lib/settings';

const file = JSON.parse(fs.readFileSync(CONSTANTS_FILE, 'utf8'));

/** Loads a copy of constants.json changed by `change`. */
function loadChanged(change: (names: any) => void) {
  const copy = JSON.parse(JSON.stringify(file));
  change(copy);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csvlake-constants-'));
  try {
    const changed = path.join(dir, 'constants.json');
    fs.writeFileSync(changed, JSON.stringify(copy));
    return loadSharedNames(changed);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the stack reads every shared name from constants.json', () => {
  expect(SHARED_NAMES).toEqual(file);
  expect(loadChanged((names) => (names.metrics.files_failed = 'FilesLost')).metrics.files_failed).toBe('FilesLost');
});

test('a name missing from constants.json, or empty, fails the synth', () => {
  expect(() => loadChanged((names) => delete names.environment.pipeline)).toThrow(/environment\.pipeline must be a non-empty string/);
  expect(() => loadChanged((names) => (names.substitutions.reducer = ''))).toThrow(/substitutions\.reducer/);
  expect(() => loadChanged((names) => delete names.errors)).toThrow(/errors\.transient/);
  expect(() => loadChanged((names) => delete names.environment.lease_seconds)).toThrow(/environment\.lease_seconds/);
  expect(() => loadChanged((names) => (names.environment.input_root = ''))).toThrow(/environment\.input_root/);
  expect(() => loadChanged((names) => delete names.environment.max_concurrency)).toThrow(/environment\.max_concurrency/);
});
