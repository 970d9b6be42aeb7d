/**
 * Ids for jobs and approvals: 26 characters of Crockford base32 in the shape
 * of a ULID (10 characters of millisecond time, 16 of the rest), sorting in
 * the order they were made, so a keyset page or a tie on run time follows
 * submission order.
 *
 * Unlike a monotonic ULID, whose ids made in one millisecond share all but
 * their last characters, two ids from one generator always differ in their
 * first 12 characters — the short form the CLI prints and takes back as a
 * prefix. The 2 characters after the time are a counter within the
 * millisecond (starting at a random value below 512, so there is room for at
 * least 512 ids); when it runs out, the generator moves on to the next
 * millisecond early and the clock catches up. The last 14 characters are
 * random (70 bits), so ids from different processes do not collide.
 */
import { randomFillSync } from 'node:crypto';
import { encodeTime } from 'ulidx';

const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Characters of an id that the CLI and the dashboard show. */
export const SHORT_ID_LENGTH = 12;

export function idFactory(now: () => number = Date.now): () => string {
  const random = Buffer.alloc(4096);
  let offset = random.length;
  const byte = () => {
    if (offset === random.length) {
      randomFillSync(random);
      offset = 0;
    }
    return random[offset++];
  };
  let last = -1;
  let time = '';
  let counter = 0;
  const start = (ms: number) => {
    last = ms;
    time = encodeTime(ms, 10);
    counter = ((byte() << 8) | byte()) & 511;
  };
  return () => {
    const ms = now();
    if (ms > last) start(ms);
    else if (++counter > 1023) start(last + 1);
    let id = time + B32[counter >> 5] + B32[counter & 31];
    for (let i = 0; i < 14; i++) id += B32[byte() & 31];
    return id;
  };
}
