#!/usr/bin/env node
// A script agent for examples/agents.yaml: reads the job as JSON on stdin
// (stdin: json), reports progress with "::progress" lines, logs with plain
// lines, and prints its result as a "::result" line.
//
// The summary is extractive: the sentences with the most frequent words.

let stopped = false;
process.on('SIGTERM', () => {
  // Cancelled or timed out: stop at once (agentq sends SIGKILL after killGrace anyway).
  stopped = true;
  process.exit(143);
});

const input = await new Promise((resolve, reject) => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => (text += chunk));
  process.stdin.on('end', () => resolve(text));
  process.stdin.on('error', reject);
});
const job = JSON.parse(input);
const payload = job.payload && typeof job.payload === 'object' ? job.payload : {};
const text = String(payload.text ?? job.instructions ?? '').trim();
const maxSentences = Number.isInteger(payload.sentences) && payload.sentences > 0 ? payload.sentences : 2;

if (text === '') {
  console.error('nothing to summarize: give payload.text or instructions');
  process.exit(2);
}

console.log('::progress 10 reading');
const sentences = text.match(/[^.!?]+[.!?]*/g)?.map((s) => s.trim()).filter(Boolean) ?? [text];
console.log(`${sentences.length} sentences, ${text.split(/\s+/).length} words`);

console.log('::progress 50 scoring sentences');
const words = (s) => s.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
const counts = new Map();
for (const w of words(text)) if (w.length > 3) counts.set(w, (counts.get(w) ?? 0) + 1);
const scored = sentences.map((sentence, index) => ({
  sentence,
  index,
  score: words(sentence).reduce((sum, w) => sum + (counts.get(w) ?? 0), 0) / Math.max(1, words(sentence).length),
}));
const picked = [...scored]
  .sort((a, b) => b.score - a.score)
  .slice(0, maxSentences)
  .sort((a, b) => a.index - b.index)
  .map((s) => s.sentence);
const keywords = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([w]) => w);

if (!stopped) {
  console.log('::progress 100 done');
  console.log(`::result ${JSON.stringify({ summary: picked.join(' '), keywords, sentences: sentences.length })}`);
}
