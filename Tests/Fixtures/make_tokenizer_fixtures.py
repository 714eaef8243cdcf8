#!/usr/bin/env python3
"""Reference data for the CLIP tokenizer tests (Tests/DiffusionTests/TokenizerTests.swift).

Writes Tests/Fixtures/tokenizer/reference.json with, for every prompt:
  - open_clip ids: open_clip.tokenizer.SimpleTokenizer (ftfy + html.unescape x2 + whitespace + lower)
  - transformers ids: transformers' CLIPTokenizer built from the *same* BPE file (vocab.json/merges.txt are
    constructed here: the openai/clip-vit-large-patch14 files cannot be downloaded in this environment)
  - the 77-token sequences for both encoders' padding (49407 for CLIP-L, 0 for OpenCLIP bigG)
and, for ComfyUI-style weighted prompts, the list of 77-token windows with weights. ComfyUI itself is not
installable here, so the windows come from a Python port (below, `comfy_*`) of ComfyUI's
comfy/sd1_clip.py: parse_parentheses / token_weights / escape_important / SDTokenizer.tokenize_with_weights,
as of the versions that tokenize each weighted segment as one group (no split on spaces). The segment
tokenizer is transformers' CLIPTokenizer, as in ComfyUI.

With --entities it also regenerates Sources/Diffusion/TokenizerHTMLEntities.swift from Python's
html.entities.html5 and the html module's numeric character-reference tables.

Pinned versions used to write the committed fixtures are recorded in reference.json ("versions").
Run from the package root:  python3 Tests/Fixtures/make_tokenizer_fixtures.py [--entities]
"""
import gzip
import html
import html.entities
import json
import os
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BPE_TXT = os.path.join(ROOT, "Sources", "Diffusion", "Resources", "bpe_simple_vocab_16e6.txt")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "reference.json")
ENTITIES_SWIFT = os.path.join(ROOT, "Sources", "Diffusion", "TokenizerHTMLEntities.swift")

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "",
    " ",
    "A Photo Of An ASTRONAUT",
    "a fish made out of dendrobium flowers, ultrarealistic, highly detailed, 8k",
    "masterpiece, best quality, 1girl, solo, looking at viewer",
    "1234 5678.90 3.14159 1e10 0x1F",
    "price: $1,299.99 (50% off!) #sale @home",
    "!", "!!", "!!!", "a!b", "hello!", "! ! !", "!!!!!!!!!!!!",
    "it's don't we're they've I'm you'll he'd",
    "IT'S DON'T WE'RE",
    "''s 'S 'x rock'n'roll",
    "  lots   of\twhite\nspace\r\n  here  ",
    "tom &amp; jerry &lt;3 &quot;quoted&quot; &#39;single&#39; &#x263A; &copy 2024",
    "&amp;amp; double escaped",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 cre\u0300me bru\u0302le\u0301e",
    "stra\u00dfe \u00c5ngstr\u00f6m \u00d8resund",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u732b",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442 \u03a3\u039f\u03a6\u039f\u03a3",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "emoji \U0001F600\U0001F680 \u2764\ufe0f \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u00bd \u2153 \u00b2 \u0665\u0666 \u2167",
    "under_score hyphen-ated slash/path back\\slash",
    "<|startoftext|>inner<|endoftext|> text",
    "x!<|endoftext|>y <|ENDOFTEXT|>",
    "it\u2019s a \u201cquote\u201d",
    "a,b.c;d:e?f", "...", "---===+++", "(((", "\"quoted\"",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    ", ".join(["a beautiful landscape painting"] * 20),
    " ".join(f"word{i}" for i in range(60)),
]

WEIGHTED_PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "",
    "(masterpiece:1.2), best quality, (detailed eyes), ((very detailed)), (((ultra)))",
    "a (red:0.5) car and a (blue:1.5) truck",
    "((nested (deep:1.3) inside)) tail",
    "escaped \\(not weighted\\) but (weighted)",
    "unbalanced ) paren ( here",
    "(no colon weight) (colon at end:) (:1.5 leading colon) (a:b:1.25) (bad:abc)",
    "(spaces: 1.3 ) (exp:1e-1) (under:1_5) (neg:-0.5) (inf:inf)",
    "(one:1.0) (two:2)",
    "   ",
    ", ".join(["a beautiful landscape painting with mountains"] * 12),
    "(" + ", ".join(["cinematic lighting"] * 30) + ":1.1), tail words here",
    " ".join(["tiny"] * 74) + " (abcdefgh ijklmnop qrstuvwx:1.2) after",
    " ".join(["tiny"] * 70) + " (short one:1.3) after",
    " ".join(["x"] * 76),
    " ".join(["x"] * 75) + " (y z:1.2)",
    " ".join(["x"] * 200),
]


def read_merges():
    text = open(BPE_TXT, encoding="utf-8").read()
    lines = text.split("\n")
    # The shipped file must equal the head of open_clip's gz (header + 48894 merges).
    import open_clip
    gz = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    ref = gzip.open(gz).read().decode("utf-8").split("\n")
    assert lines[: 49152 - 256 - 2 + 1] == ref[: 49152 - 256 - 2 + 1], "shipped BPE file differs from open_clip's"
    return [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def make_transformers_tokenizer(merges):
    from transformers import CLIPTokenizer
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    enc = dict(zip(vocab, range(len(vocab))))
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(enc, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tok = CLIPTokenizer(vocab_file=os.path.join(d, "vocab.json"), merges_file=os.path.join(d, "merges.txt"),
                        vocab=enc, merges=[tuple(m) for m in merges], model_max_length=77)
    return tok


# ---------------- Python port of ComfyUI's prompt rules (comfy/sd1_clip.py) ----------------

def comfy_parse_parentheses(string):
    result, current, nesting = [], "", 0
    for ch in string:
        if ch == "(":
            if nesting == 0:
                if current:
                    result.append(current)
                current = "("
            else:
                current += ch
            nesting += 1
        elif ch == ")":
            nesting -= 1
            if nesting == 0:
                result.append(current + ")")
                current = ""
            else:
                current += ch
        else:
            current += ch
    if current:
        result.append(current)
    return result


def comfy_token_weights(string, current_weight):
    out = []
    for x in comfy_parse_parentheses(string):
        weight = current_weight
        if len(x) >= 2 and x[-1] == ")" and x[0] == "(":
            x = x[1:-1]
            xx = x.rfind(":")
            weight *= 1.1
            if xx > 0:
                try:
                    weight = float(x[xx + 1 :])
                    x = x[:xx]
                except ValueError:
                    pass
            out += comfy_token_weights(x, weight)
        else:
            out += [(x, current_weight)]
    return out


def comfy_tokenize_with_weights(tok, text, pad_token, max_length=77, start=49406, end=49407, max_word_length=8):
    text = text.replace("\\)", "\0\1").replace("\\(", "\0\2")
    groups = []
    for segment, weight in comfy_token_weights(text, 1.0):
        word = segment.replace("\0\1", ")").replace("\0\2", "(")
        if word == "":
            continue
        groups.append([(t, weight) for t in tok(word)["input_ids"][1:-1]])
    windows, batch = [], [(start, 1.0)]
    windows.append(batch)
    for group in groups:
        is_large = len(group) >= max_word_length
        while len(group) > 0:
            if len(group) + len(batch) > max_length - 1:
                remaining = max_length - len(batch) - 1
                if is_large:
                    batch.extend(group[:remaining])
                    batch.append((end, 1.0))
                    group = group[remaining:]
                else:
                    batch.append((end, 1.0))
                    batch.extend([(pad_token, 1.0)] * remaining)
                batch = [(start, 1.0)]
                windows.append(batch)
            else:
                batch.extend(group)
                group = []
    batch.append((end, 1.0))
    batch.extend([(pad_token, 1.0)] * (max_length - len(batch)))
    return windows


def json_float(x):
    # Non-finite weights (e.g. "(a:inf)") as strings; the Swift side decodes them with
    # JSONDecoder.nonConformingFloatDecodingStrategy.
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def write_entities():
    # Named references: "name=HEX[,HEX]" lines; numeric tables from the html module (CPython's html.unescape).
    named = "\n".join(f"{k}={','.join('%X' % ord(c) for c in v)}" for k, v in sorted(html.entities.html5.items()))
    invalid = ",".join(f"{k:X}={'%X' % ord(v)}" for k, v in sorted(html._invalid_charrefs.items()))
    codepoints = ",".join("%X" % c for c in sorted(html._invalid_codepoints))
    isspace = ",".join("%X" % c for c in range(0x110000) if chr(c).isspace())
    src = f'''// Generated by Tests/Fixtures/make_tokenizer_fixtures.py --entities from Python {sys.version.split()[0]}'s
// html.entities.html5 (the WHATWG list of named character references) and the numeric-reference tables
// of CPython's html.unescape. Do not edit by hand.

enum TokenizerHTMLEntities {{
    /// One "name=HEX,HEX" per line; names include the trailing ";" where the standard has one.
    static let named = """
{named}
"""
    /// Numeric references that map to another character ("CODE=REPLACEMENT").
    static let invalidCharrefs = "{invalid}"
    /// Numeric references that are dropped.
    static let invalidCodepoints = "{codepoints}"
    /// The characters Python's str.isspace() accepts (str.split() and float() use them).
    static let pythonWhitespace = "{isspace}"
}}
'''
    with open(ENTITIES_SWIFT, "w", encoding="utf-8") as f:
        f.write(src)
    print("wrote", ENTITIES_SWIFT)


def main():
    if "--entities" in sys.argv:
        write_entities()
        return
    import ftfy
    import open_clip
    import transformers
    from open_clip.tokenizer import SimpleTokenizer

    merges = read_merges()
    oc = SimpleTokenizer()
    hf = make_transformers_tokenizer(merges)
    golden = hf("a photo of an astronaut riding a horse on mars")["input_ids"]
    assert golden == [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407], golden

    cases = []
    for p in PROMPTS:
        oc_ids = oc.encode(p)
        hf_ids = hf(p, add_special_tokens=False)["input_ids"]
        oc_77 = oc([p], context_length=77)[0].tolist()  # pads with 0
        hf_77 = hf(p, padding="max_length", truncation=True, max_length=77)["input_ids"]  # pads with EOS
        cases.append({"text": p, "open_clip": oc_ids, "transformers": hf_ids,
                      "open_clip_77_pad0": oc_77, "transformers_77_pad_eos": hf_77})

    weighted = []
    for p in WEIGHTED_PROMPTS:
        for pad in (49407, 0):
            wins = comfy_tokenize_with_weights(hf, p, pad)
            weighted.append({"text": p, "pad": pad,
                             "ids": [[t for t, _ in w] for w in wins],
                             "weights": [[json_float(w) for _, w in win] for win in wins]})

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"versions": {"python": sys.version.split()[0], "open_clip_torch": open_clip.__version__,
                                "transformers": transformers.__version__, "ftfy": ftfy.__version__},
                   "cases": cases, "weighted": weighted}, f, ensure_ascii=False, indent=None, allow_nan=False)
        f.write("\n")
    diff = [c["text"] for c in cases if c["open_clip"] != c["transformers"]]
    print(f"wrote {OUT}: {len(cases)} prompts, {len(weighted)} weighted cases; open_clip != transformers for: {diff!r}")


if __name__ == "__main__":
    main()
