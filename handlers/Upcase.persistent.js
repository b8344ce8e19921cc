#!/usr/bin/env node
// Upcase: a text in capitals, as a persistent handler (Node.js, no packages).
//
// One process serves many jobs: each job is one JSON line on stdin, and each
// answer one "done" line on the descriptor in RESQUE_RESULT_FD (3).
//
// Job:     {"class":"Upcase","args":["abc"]}   result {"text":"ABC"}
// By hand: echo '{"args":["abc"]}' | ./handlers/Upcase.persistent.js
"use strict";
const fs = require("fs");
const readline = require("readline");

// writeSync: each line is written (flushed) at once. Use the variable, not a
// check whether fd 3 is open: without resqued, Node uses fd 3 itself.
const out = Number(process.env.RESQUE_RESULT_FD || 1);
const report = (obj) => fs.writeSync(out, JSON.stringify(obj) + "\n");

function upcase(args) {
  if (!Array.isArray(args) || args.length !== 1 || typeof args[0] !== "string") {
    throw new TypeError(`args must be ["some text"], got ${JSON.stringify(args).slice(0, 100)}`);
  }
  return { text: args[0].toUpperCase() };
}

// One job per line; at EOF readline closes and the process exits.
readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on("line", (line) => {
  try {
    report({ done: "ok", result: upcase(JSON.parse(line).args) });
  } catch (err) {
    console.error(`Upcase: ${err.message}`);
    const backtrace = err.stack.split("\n").slice(1).map((l) => l.trim());
    report({ done: "failed", exception: err.name, error: err.message, backtrace });
  }
});
