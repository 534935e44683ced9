// Runs a GGUF model in llama.cpp (the prebuilt library of the npm package node-llama-cpp) and
// compares its greedy continuation with the one `mx generate --temperature 0 --json` wrote.
//
//   node compare_greedy.mjs NODE_LLAMA_CPP_DIR MODEL.gguf MX.json PROMPT REQUIRED [TIE]
//
// The prompt must tokenize the same in both (BOS, then the text). The continuations must agree
// on their first REQUIRED tokens; with TIE, a parting before that is accepted where mx's two
// largest logits at that step lie within TIE of each other (a near tie that rounding may flip
// either way). Prints one line of findings. Exit status: 0 agreed, 1 disagreed, 77 llama.cpp
// could not be started here (a skip, not a failure).
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [dir, modelPath, mxJson, prompt, requiredText, tieText] = process.argv.slice(2);
const required = Number(requiredText);
const tie = tieText === undefined ? null : Number(tieText);
const ours = JSON.parse(readFileSync(mxJson, "utf8"));

let llama;
try {
  const lib = await import(pathToFileURL(join(dir, "node_modules/node-llama-cpp/dist/index.js")));
  llama = await lib.getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
} catch (e) {
  console.log(`SKIP: llama.cpp from node-llama-cpp does not start here: ${String(e).split("\n")[0]}`);
  process.exit(77);
}

const name = modelPath.split("/").pop();
const fail = (why) => {
  console.log(`FAIL: ${name}: ${why}`);
  process.exit(1);
};
let model;
try {
  model = await llama.loadModel({modelPath});
} catch (e) {
  fail(`llama.cpp cannot load it: ${String(e).split("\n")[0]}`);
}
const promptIds = [model.tokens.bos, ...model.tokenize(prompt)];
if (JSON.stringify(promptIds) !== JSON.stringify(ours.prompt_ids)) {
  fail(`the prompt tokenizes as ${JSON.stringify(promptIds)} in llama.cpp, ` +
       `${JSON.stringify(ours.prompt_ids)} in mx`);
}

const context = await model.createContext({contextSize: 256, threads: 2});
const sequence = context.getSequence();
const theirs = [];
const eog = new Set([model.tokens.eos, model.tokens.bos]);
for await (const token of sequence.evaluate(promptIds, {temperature: 0})) {
  theirs.push(token);
  if (theirs.length >= ours.ids.length || eog.has(token)) break;
}
const steps = Math.min(theirs.length, ours.ids.length);
let agree = 0;
while (agree < steps && theirs[agree] === ours.ids[agree]) ++agree;
const text = JSON.stringify(model.detokenize(theirs.slice(0, agree)));
await context.dispose();
await model.dispose();

// Both may stop at an end token before REQUIRED; mx must not simply have been asked for less.
const ended = ours.ids.length > 0 && eog.has(ours.ids[ours.ids.length - 1]);
if (ours.ids.length < required && !ended) {
  fail(`mx generated only ${ours.ids.length} tokens, fewer than the ${required} required`);
}
let verdict = `agree on ${agree} of ${steps} greedy tokens (required ${required})`;
if (agree < steps) {
  const [first, second] = ours.top2_logits[agree];
  verdict += `; at step ${agree} llama.cpp chose ${theirs[agree]}, mx ${ours.ids[agree]}` +
             ` (mx's two largest logits ${first} and ${second}, ${first - second} apart)`;
}
const tiesAllowed = tie !== null && agree < required && agree < steps &&
                    ours.top2_logits[agree][0] - ours.top2_logits[agree][1] <= tie;
if (agree < Math.min(required, ours.ids.length) && !tiesAllowed) {
  fail(verdict);
}
console.log(`PASS: ${name}: ${verdict}${tiesAllowed ? `, a tie within ${tie}` : ""}; llama.cpp: ${text}`);
