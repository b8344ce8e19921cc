#!/usr/bin/env node
// Wordfreq: the most frequent words of a text (Node.js, no packages).
//
// Job:     {"class":"Wordfreq","args":["the cat the hat", 3]}  (how many: default 3)
// Result:  {"top":[["the",2],["cat",1],["hat",1]]}
// By hand: echo '["the cat the hat"]' | ./handlers/Wordfreq.js
"use strict";
const fs = require("fs");

// Result and failure: one JSON line each on the descriptor resqued names in
// RESQUE_RESULT_FD (3); on stdout (1) when run by hand. (Do not just test
// whether fd 3 is open: without resqued, Node itself uses fd 3 internally.)
const out = Number(process.env.RESQUE_RESULT_FD || 1);
const report = (obj) => fs.writeSync(out, JSON.stringify(obj) + "\n");

function topWords(args) {
  const [text, n = 3] = Array.isArray(args) ? args : [];
  if (typeof text !== "string" || !Number.isInteger(n) || n < 1) {
    throw new TypeError(`args must be ["some text", count?], got ${JSON.stringify(args).slice(0, 100)}`);
  }
  const counts = new Map();
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}']+/gu) || []) {
    counts.set(word, (counts.get(word) || 0) + 1);
  }
  // Most frequent first, ties in alphabetical order.
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return { top: sorted.slice(0, n) };
}

try {
  const args = JSON.parse(fs.readFileSync(0, "utf8"));
  report({ result: topWords(args) });
} catch (err) {
  console.error(`Wordfreq: ${err.message}`);
  // err.stack's first line repeats the message; the rest are "at ..." frames.
  const backtrace = err.stack.split("\n").slice(1).map((l) => l.trim());
  report({ exception: err.name, error: err.message, backtrace });
  process.exitCode = 1;
}
