"""Builds tiny-llama/tokenizer.json: a llama-layout BPE tokenizer trained on CORPUS below.

Layout follows llama / llava-hf tokenizer.json: <unk>, <s>, </s> at 0..2, byte-fallback pieces
<0x00>..<0xFF> at 3..258, then the base characters of the corpus, then one piece per merge in
merge order, then the added special token <image>. Training is plain sentencepiece-style BPE on
words prefixed with U+2581 (most frequent pair first, ties broken by the pair's first appearance),
deterministic. Also writes tiny-llama-metaspace/tokenizer.json: the same model in the newer
layout (transformers' non-legacy llama conversion): no normalizer, a Metaspace pre-tokenizer with
prepend_scheme "first", so text right after an added token gets no leading U+2581.
Run: python3 make_tiny_llama.py (writes next to this file).
"""
import json, os, collections

SP = "\u2581"
NUM_MERGES = 300
CORPUS = """
the cat sat on the mat and the dog sat on the log . what is in the image ? the image shows a cat
on a red mat next to a small dog . there are two animals in the picture and they are sitting
together . a man is riding a horse in the field while the sun is shining . the woman is holding
an umbrella in the rain . what color is the car ? the car is blue and it is parked near the
house . how many people are there in the photo ? there are three people standing in front of the
building . describe the scene in detail . the scene shows a busy street with cars , buses and
people walking on the sidewalk . is there a tree in the picture ? yes , there is a tall green
tree behind the house . what is the man doing ? he is reading a book while sitting on a bench .
the children are playing with a ball in the park . the sky is clear and the weather is nice .
answer the question using a single word or phrase . what animal is this ? this is a cat .
where is the dog ? the dog is under the table . the table has a plate of food and a cup of tea .
a chat between a curious human and an artificial intelligence assistant . the assistant gives
helpful , detailed , and polite answers to the human's questions . user : assistant :
USER ASSISTANT What Where How Is The A There This Describe Yes No
"""

def main():
    words = collections.Counter()
    order = {}
    for w in CORPUS.split():
        words[SP + w] += 1
        order.setdefault(SP + w, len(order))
    chars = []
    for w in sorted(words, key=order.get):
        for c in w:
            if c not in chars:
                chars.append(c)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for c in chars:
        vocab[c] = len(vocab)
    segs = {w: list(w) for w in words}
    merges = []
    while len(merges) < NUM_MERGES:
        counts = collections.Counter()
        first = {}
        for w in sorted(words, key=order.get):
            s = segs[w]
            for i in range(len(s) - 1):
                p = (s[i], s[i + 1])
                counts[p] += words[w]
                first.setdefault(p, len(first))
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -first[p]))
        if counts[best] < 1:
            break
        merges.append(best)
        joined = best[0] + best[1]
        if joined not in vocab:
            vocab[joined] = len(vocab)
        for w in words:
            s = segs[w]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out
    image_id = len(vocab)

    def special(i, content):
        return {"id": i, "content": content, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}

    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>"),
                         special(image_id, "<image>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP},
            {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tiny-llama", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    tok["normalizer"] = None
    tok["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": False}
    os.makedirs(os.path.join(here, "tiny-llama-metaspace"), exist_ok=True)
    with open(os.path.join(here, "tiny-llama-metaspace", "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(len(vocab), "pieces,", len(merges), "merges, <image> =", image_id)

main()
