// Builds the small HF-trained fixture tokenizers under tests/data/tokenizers/ (spm-bytefallback,
// falcon-style, bert-style-bpe) with the npm `tokenizers` package: each pipeline is configured like
// a published model's tokenizer.json, trained on this repository's own text files, then given byte
// tokens and added tokens. Run from the repo root after `npm install --prefix .peers tokenizers`:
//   node scripts/tokenizer_train_fixtures.mjs
import { execSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.resolve(".peers/package.json"));
const { Tokenizer } = require("tokenizers");

const root = "tests/data/tokenizers";
const files = execSync("git ls-files -- '*.md' '*.cpp' '*.hpp' '*.py' '*.sh'", { encoding: "utf8" })
  .split("\n").filter((f) => f && !f.startsWith("tests/data/"));
const extra = [
  "Café naïve résumé — déjà vu. Übergrößenträger straße. 東京は日本の首都です。北京欢迎你。",
  "Привет, мир! Γειά σου Κόσμε. مرحبا بالعالم. שלום עולם. नमस्ते दुनिया। 안녕하세요 세계.",
];
const tmp = path.join(os.tmpdir(), "ssm_tok_train.txt");
fs.writeFileSync(tmp, files.map((f) => fs.readFileSync(f, "utf8")).join("\n") + extra.join("\n").repeat(20));

const emptyBpe = (extra) => ({ type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
  end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [], ...extra });

function train(name, config, finish) {
  const tk = Tokenizer.fromString(JSON.stringify({ version: "1.0", truncation: null, padding: null,
    added_tokens: [], ...config }));
  tk.train([tmp]);
  const out = path.join(os.tmpdir(), `ssm_tok_${name}.json`);
  tk.save(out, true);
  const tj = JSON.parse(fs.readFileSync(out, "utf8"));
  finish(tj);
  // Re-load through HF to normalize the file layout, then write it.
  const final = Tokenizer.fromString(JSON.stringify(tj));
  fs.mkdirSync(path.join(root, name), { recursive: true });
  final.save(path.join(root, name, "tokenizer.json"), true);
  console.log(`${name}: ${Object.keys(tj.model.vocab).length} vocab, ${tj.model.merges.length} merges`);
}

function addVocab(tj, tokens) {
  let next = Math.max(...Object.values(tj.model.vocab)) + 1;
  for (const t of tokens) if (!(t in tj.model.vocab)) tj.model.vocab[t] = next++;
}

function added(tj, list) {
  tj.added_tokens = list.map(([content, special, opts = {}]) => {
    addVocab(tj, [content]);
    return { id: tj.model.vocab[content], content, single_word: !!opts.single_word, lstrip: !!opts.lstrip,
      rstrip: !!opts.rstrip, normalized: opts.normalized ?? !special, special };
  });
}

const byteAlphabet = () => {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  let n = 0;
  return [...Array(256).keys()].map((b) => String.fromCodePoint(bs.includes(b) ? b : 256 + n++));
};

// Mistral/Llama-style sentencepiece BPE: Metaspace (prepend first), byte_fallback, <s> template.
train("spm-bytefallback", {
  normalizer: null,
  pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
  post_processor: null, decoder: null, model: emptyBpe({}),
}, (tj) => {
  added(tj, [["<unk>", true], ["<s>", true], ["</s>", true], ["[INST]", true], ["[/INST]", true],
    ["<mask>", false, { lstrip: true, normalized: false }], ["<tool>", false, { single_word: true }],
    ["<br>", false, { rstrip: true }]]);
  addVocab(tj, [...Array(256).keys()].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
  Object.assign(tj.model, { unk_token: "<unk>", fuse_unk: true, byte_fallback: true });
  tj.post_processor = { type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
      { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<s>": { id: "<s>", ids: [tj.model.vocab["<s>"]], tokens: ["<s>"] } } };
  tj.decoder = { type: "Sequence", decoders: [{ type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
    { type: "ByteFallback" }, { type: "Fuse" }] };
});

// Falcon-style: Punctuation + ByteLevel + Digits + 3-digit Split, ByteLevel post-processor/decoder.
train("falcon-style", {
  normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [
    { type: "Punctuation", behavior: "Contiguous" },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    { type: "Digits", individual_digits: false },
    { type: "Split", pattern: { Regex: "[0-9][0-9][0-9]" }, behavior: "Isolated", invert: false }] },
  post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: emptyBpe({}),
}, (tj) => {
  addVocab(tj, byteAlphabet());
  added(tj, [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<", "<|endoftext|>"]
    .map((t) => [t, true]));
});

// Normalizer-heavy BPE: NFKD + Lowercase + Replace + Strip, Whitespace + Digits, Bert post-processor,
// WordPiece decoder.
train("bert-style-bpe", {
  normalizer: { type: "Sequence", normalizers: [{ type: "NFKD" }, { type: "Lowercase" },
    { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, { type: "Strip", strip_left: true, strip_right: true }] },
  pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Whitespace" }, { type: "Digits", individual_digits: true }] },
  post_processor: null, decoder: { type: "WordPiece", prefix: "##", cleanup: true }, model: emptyBpe({}),
}, (tj) => {
  added(tj, [["[UNK]", true], ["[CLS]", true], ["[SEP]", true], ["[MASK]", true, { lstrip: true }]]);
  tj.model.unk_token = "[UNK]";
  tj.post_processor = { type: "BertProcessing", sep: ["[SEP]", tj.model.vocab["[SEP]"]],
    cls: ["[CLS]", tj.model.vocab["[CLS]"]] };
});
