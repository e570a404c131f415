// Writes tests/data/tokenizers/<name>/expected.json for every tokenizer directory there: the ids that
// HF `tokenizers` (npm package, the reference) gives for each text of tests/data/tokenizers/corpus.json,
// with and without add_special_tokens, and decode() results. Optional: `--bench` times encode on ~1 MB.
// Run from the repo root after `npm install --prefix .peers tokenizers`:
//   node scripts/tokenizer_reference.mjs [--bench] [--dir DIR] [--only NAME]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.resolve(".peers/package.json"));
const { Tokenizer } = require("tokenizers");
const version = JSON.parse(fs.readFileSync(".peers/node_modules/tokenizers/package.json", "utf8")).version;

const args = process.argv.slice(2);
const bench = args.includes("--bench");
const root = args.includes("--dir") ? args[args.indexOf("--dir") + 1] : "tests/data/tokenizers";
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
const corpus = JSON.parse(fs.readFileSync("tests/data/tokenizers/corpus.json", "utf8")).texts;

for (const name of fs.readdirSync(root).sort()) {
  if (only && name !== only) continue;
  const file = path.join(root, name, "tokenizer.json");
  if (!fs.existsSync(file)) continue;
  const tk = Tokenizer.fromFile(file);
  if (bench) {
    // Same strings as bench/bench_tokenizer.cpp: each text repeated ceil(1e6 / bytes) times.
    const rep = (s) => s.repeat(Math.ceil(1e6 / Buffer.byteLength(s)));
    const texts = [["multilingual", rep(corpus.join("\n"))],
      ["prose", rep(fs.readFileSync("tests/data/default_model_heldout.txt", "utf8"))]];
    for (const [tname, big] of texts) {
      await tk.encode(big, null, { addSpecialTokens: false });
      const t0 = process.hrtime.bigint();
      const reps = 3;
      let n = 0;
      for (let r = 0; r < reps; r++) n = (await tk.encode(big, null, { addSpecialTokens: false })).getIds().length;
      const sec = Number(process.hrtime.bigint() - t0) / 1e9 / reps;
      console.log(`${path.join(root, name)}\t${tname}\t${(Buffer.byteLength(big) / 1e6 / sec).toFixed(2)} MB/s\t${n} tokens\t${Buffer.byteLength(big)} bytes`);
    }
    continue;
  }
  const cases = [];
  for (const text of corpus) {
    const ids = (await tk.encode(text, null, { addSpecialTokens: false })).getIds();
    const idsSpecial = (await tk.encode(text, null, { addSpecialTokens: true })).getIds();
    cases.push({ text, ids, ids_special: idsSpecial, decoded: await tk.decode(idsSpecial, false),
      decoded_skip_special: await tk.decode(idsSpecial, true) });
  }
  const out = { generator: `scripts/tokenizer_reference.mjs with npm tokenizers ${version}`, cases };
  fs.writeFileSync(path.join(root, name, "expected.json"), JSON.stringify(out, null, 1) + "\n");
  console.log(`${name}: ${cases.length} cases`);
}
