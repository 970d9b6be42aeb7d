/**
 * An event subscriber process for the benchmarks, on the built package.
 * argv[2] is the database. Counts `bench.*` events; for each, the delay from
 * its publish (payload.t, ms on the shared wall clock) to its delivery here.
 * Reports `{count, delays}` when asked with the message 'report'.
 */
import { openQueue } from '../dist/index.js';

const wallNow = () => performance.timeOrigin + performance.now();
const queue = await openQueue(process.argv[2]);
let count = 0;
let delays = [];
const sub = queue.events.subscribe(
  'bench.*',
  (e) => {
    count++;
    delays.push(wallNow() - e.payload.t);
  },
  { after: await queue.events.lastId() },
);
process.on('message', async (msg) => {
  if (msg === 'report') {
    process.send({ count, delays });
    delays = [];
  } else if (msg === 'stop') {
    sub.close();
    await queue.close();
    process.exit(0);
  }
});
process.send('ready');
