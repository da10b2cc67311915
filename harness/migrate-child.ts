// One half of a migration, in its own process (spawned by harness/migrate.ts).
//   source SPEC            : fl_migrate_source; the C code writes its JSON line
//                            to stdout itself at cut-over (out_fd=1). Post-copy
//                            and hybrid: first {"serving":PORT}, then it reads
//                            "start" and, after the cut-over, "done" from stdin (go_fd=0).
//   dest REGION_SPEC SPEC  : create the lazy region (connect to the store), then
//                            fl_migrate_dest, whose C code prints {"ready":true}
//                            once its threads and connections are up and reads
//                            the cut-over line "intervals=N" from stdin itself
//                            (ready_fd=1 go_fd=0): no event loop in between.
//                            Its result JSON is printed here.
// Any failure: one line {"error": "..."} and exit code 1.
import { NativeRegion, migrateSourceNative } from './native.js';
import { dieWithParent } from './lifeline.js';

dieWithParent();

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const [role, spec, destSpec] = process.argv.slice(2);
  if (role === 'source') {
    await migrateSourceNative(`${spec} out_fd=1 go_fd=0`);
    return;
  }
  if (role !== 'dest') throw new Error(`unknown role '${role}' (source or dest)`);
  const region = await NativeRegion.create(spec);
  try {
    say(await region.migrateDest(`${destSpec} ready_fd=1 go_fd=0`));
  } finally {
    region.destroy();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    say({ error: e.message });
    process.exit(1);
  },
);
