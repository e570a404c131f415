// Renders every tests/data/chat_templates/<name>.jinja with @huggingface/jinja (HF's own JS renderer,
// the one transformers.js uses) for a fixed set of conversations and writes the outputs (or the
// raise_exception / error messages) to tests/data/chat_templates/expected.json, the byte-exact
// reference for tests/unit/test_chat_template.cpp. strftime_now is pinned to 2024-07-26 12:00 UTC.
// Setup:  npm install --prefix .peers @huggingface/jinja
// Usage:  node scripts/chat_template_reference.mjs
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, ".peers", "package.json"));
const { Template } = require("@huggingface/jinja");
const jinjaVersion = JSON.parse(fs.readFileSync(path.join(root, ".peers", "node_modules", "@huggingface", "jinja",
                                                          "package.json"), "utf8")).version;
const dir = path.join(root, "tests", "data", "chat_templates");

// Each model's real bos/eos tokens (tokenizer_config.json); tools: the template renders a tools list.
const MODELS = {
  "qwen2": { bos: "", eos: "<|im_end|>" },
  "qwen2.5": { bos: "", eos: "<|im_end|>", tools: true },
  "qwen3": { bos: "", eos: "<|im_end|>", tools: true },
  "smollm2": { bos: "<|im_start|>", eos: "<|im_end|>" },
  "hermes3": { bos: "<|begin_of_text|>", eos: "<|im_end|>" },
  "llama2": { bos: "<s>", eos: "</s>" },
  "llama3": { bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
  "llama3.1": { bos: "<|begin_of_text|>", eos: "<|eot_id|>", tools: true },
  "llama3.2": { bos: "<|begin_of_text|>", eos: "<|eot_id|>", tools: true },
  "mistral-instruct": { bos: "<s>", eos: "</s>" },
  "mixtral-8x22b": { bos: "<s>", eos: "</s>", tools: true },
  "mistral-small-24b": { bos: "<s>", eos: "</s>" },
  "zephyr-tinyllama": { bos: "<s>", eos: "</s>" },
  "gemma2": { bos: "<bos>", eos: "<eos>" },
  "gemma3": { bos: "<bos>", eos: "<end_of_turn>" },
  "phi3": { bos: "<s>", eos: "<|endoftext|>" },
  "phi4-mini": { bos: "<|endoftext|>", eos: "<|endoftext|>" },
  "granite3.3": { bos: "<|end_of_text|>", eos: "<|end_of_text|>", tools: true },
  "granite4": { bos: "<|end_of_text|>", eos: "<|end_of_text|>", tools: true },
  "nemotron-mini": { bos: "<s>", eos: "</s>", tools: true },
  "deepseek-r1-distill-llama": { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>" },
  "deepseek-v3": { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>" },
  "falcon2": { bos: "", eos: "<|endoftext|>" },
  "command-r": { bos: "<BOS_TOKEN>", eos: "<|END_OF_TURN_TOKEN|>", tools: true },
};

const m = (role, content) => ({ role, content });
const CONVERSATIONS = {
  system_user: [m("system", "You are a helpful assistant."), m("user", "Hello! What is 2+2?")],
  user_only: [m("user", "Hi")],
  multi_turn: [m("user", "What's the capital of France?"), m("assistant", "Paris."), m("user", "And of Germany?")],
  system_multi_turn: [m("system", "Answer briefly."), m("user", "Name a color."), m("assistant", "Blue."),
                      m("user", "Another one?")],
  tricky_content: [m("user", "Line one\nLine two\n  indented\ttab \"double\" 'single' \\backslash\n" +
                            "émoji 🚀 中文 {{ not_a_tag }} {% raw %}"),
                   m("assistant", "  padded answer  \n"), m("user", "末尾 ")],
  non_alternating: [m("user", "first"), m("user", "second")],
  assistant_first: [m("assistant", "I speak first."), m("user", "ok")],
};
const TOOLS = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", description: "City name" },
                                                 unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
                  required: ["city"] },
  },
}];

// strftime_now is a global of @huggingface/jinja that cannot be overridden from the context: pin the
// clock it reads instead (UTC, English month names).
const FIXED_NOW_MS = Date.UTC(2024, 6, 26, 12, 0, 0);
process.env.TZ = "UTC";
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) { if (args.length === 0) super(FIXED_NOW_MS); else super(...args); }
  static now() { return FIXED_NOW_MS; }
};

// raise_exception is also a global (it throws Error(message)); an error whose message is a string
// literal of the template's source that sits in a raise_exception call is reported as raised.
function isRaised(source, message) {
  if (!message) return false;
  const lit = (q) => q + message.replaceAll("\\", "\\\\").replaceAll(q, "\\" + q) + q;
  return source.includes("raise_exception(" + lit("'")) || source.includes("raise_exception(" + lit('"'));
}

function renderCase(source, template, context) {
  try {
    return { output: template.render(context) };
  } catch (e) {
    const message = String(e && e.message !== undefined ? e.message : e);
    return isRaised(source, message) ? { raise_exception: message } : { error: message };
  }
}

function casesFor(name, spec) {
  const out = [];
  const base = { bos_token: spec.bos, eos_token: spec.eos };
  for (const [conv, messages] of Object.entries(CONVERSATIONS)) {
    for (const agp of [true, false]) {
      out.push({ id: `${conv}/${agp ? "gen" : "nogen"}`, context: { messages, add_generation_prompt: agp, ...base } });
    }
  }
  if (spec.tools) {
    out.push({ id: "tools/gen", context: { messages: [m("user", "What's the weather in Paris?")], tools: TOOLS,
                                           add_generation_prompt: true, ...base } });
    out.push({ id: "tools_system/gen", context: { messages: CONVERSATIONS.system_user, tools: TOOLS,
                                                  add_generation_prompt: true, ...base } });
  }
  return out;
}

const result = { generator: `@huggingface/jinja ${jinjaVersion}`, fixed_now: new RealDate(FIXED_NOW_MS).toISOString(),
                 templates: {} };
for (const [name, spec] of Object.entries(MODELS)) {
  const source = fs.readFileSync(path.join(dir, `${name}.jinja`), "utf8");
  const template = new Template(source);
  result.templates[name] = casesFor(name, spec).map((c) => ({ ...c, ...renderCase(source, template, c.context) }));
}
fs.writeFileSync(path.join(dir, "expected.json"), JSON.stringify(result, null, 1) + "\n");
let n = 0, raised = 0, errors = 0;
for (const cases of Object.values(result.templates)) {
  for (const c of cases) { n++; if (c.raise_exception !== undefined) raised++; if (c.error !== undefined) errors++; }
}
console.log(`${Object.keys(result.templates).length} templates, ${n} cases (${raised} raise_exception, ${errors} errors)`);
