"""Text front-ends: punc_norm of tts.py, mtl_tts.py and tts_turbo.py, the reference EnTokenizer
and MTLTokenizer (models/tokenizers/tokenizer.py) and the Turbo AutoTokenizer, on the committed
tokenizer files of tests/fixtures/tokenizers/ (provenance in its README.md).

pkuseg, pykakasi, dicta_onnx and russian_text_stresser are not installed, so zh is not segmented
and ja, he and ru come back unchanged: the reference's own fallback, which the port matches."""

from pathlib import Path

import torch
import torch.nn.functional as F

import chatterbox.models.tokenizers.tokenizer as reference_tokenizer
from chatterbox.models.tokenizers import EnTokenizer, MTLTokenizer
from chatterbox.mtl_tts import SUPPORTED_LANGUAGES
from chatterbox.mtl_tts import punc_norm as punc_norm_mtl
from chatterbox.tts import punc_norm as punc_norm_en
from chatterbox.tts_turbo import punc_norm as punc_norm_turbo
from transformers import AutoTokenizer

from common import write_fixture

ROOT = Path(__file__).resolve().parents[3]
TOKENIZERS = ROOT / "tests" / "fixtures" / "tokenizers"
SOT, EOT = 255, 0  # T3Config.start_text_token / stop_text_token

PUNC_NORM_INPUTS = [
    "", " ", "   ", "\t\n", "hello world", "  leading spaces stay lowercase", "trailing space ",
    "ellipsis... and … unicode", "a - b - c", "semi; colon: end", "en – dash and em — dash",
    "“curly” and ‘single’ quotes", "multiple    spaces\tand\nnewlines\u3000ideographic",
    "word , comma", "ends with comma,", "ends with dash -", "question?", "exclaim!", "ß is first",
    "ǆ digraph", "ﬁne ligature", "élan vital", "1 starts with a digit", "¿qué pasa?", "ÉCOLE",
    "中文句子。", "日本語、", "全角，", "问号？", "叹号！", "\x1cfile separator\x1f", "nul\x00byte",
    "...", "…", " - ", "emoji 😀", "[laugh] tag first", "a\u0301 combining", "\u0301 lone mark",
    "x" * 50 + " ...   end",
]

EN_TEXTS = [
    "Hello world, this is a test.",
    "the quick brown fox... jumps over 13 lazy dogs!",
    "Numbers: 1,234.56 and 7% — “quoted” text; done",
    "Emoji 😀 and accents: café, naïve, Ærøskøbing.",
    "[giggle] That's funny [laughter] really [clear_throat]",
    "  spaces   everywhere   ",
    "",
    "UPPER lower MiXeD",
    "tab\tnewline\nreturn\r",
]

MTL_TEXTS = {
    "ar": "مرحبا، كيف حالك اليوم؟",
    "da": "Hej, hvordan går det? Jeg hedder Søren.",
    "de": "Größere Übungen für Straßenbahnfahrer, 1234 Äpfel!",
    "el": "Καλημέρα! Πώς είσαι σήμερα; ΟΔΟΣ ΑΘΗΝΑΣ",
    "en": "Hello there [sigh] it's 42 degrees 😀",
    "es": "¿Dónde está la biblioteca? Mañana.",
    "fi": "Hyvää huomenta, mitä kuuluu?",
    "fr": "Ça va très bien, merci ! L'œuvre était « magnifique ».",
    "he": "שלום, מה שלומך היום?",
    "hi": "नमस्ते, आप कैसे हैं?",
    "it": "Perché è così difficile? Città.",
    "ja": "こんにちは、カタカナとひらがなです。ガギグ日本語",
    "ko": "안녕하세요, 반갑습니다! 한국어 123 힣",
    "ms": "Selamat pagi, apa khabar?",
    "nl": "Goedemorgen, hoe gaat het met je? Één.",
    "no": "God morgen, hvordan har du det? Blåbær.",
    "pl": "Zażółć gęślą jaźń, dziękuję.",
    "pt": "Olá, como você está? Ação e coração.",
    "ru": "Привет, как дела? Ёжик.",
    "sv": "God morgon, hur mår du? Smörgås.",
    "sw": "Habari za asubuhi, rafiki yangu.",
    "tr": "İstanbul'da güzel bir gün, ışık ve çiçek.",
    "zh": "你好，世界！今天天气很好。我们去公园吧。",
}

# Every Lo character of these (after lower + NFKD) is in the Cangjie stand-in, with the rows
# that share its code, so the index suffix is exercised ("冕" ends on a shared code).
ZH_TEXTS = ["你好，世界！今天天气很好。我们去公园吧。", "這是一個測試，謝謝你的幫助。",
            "我有3個蘋果和2根香蕉。", "冕既晚"]

MTL_EXTRA = [
    (None, "No language at all."),
    ("", "Empty language id."),
    ("FR", "Majuscules: la langue est mise en minuscules."),
    ("ko", "   한국어 with spaces   "),
    ("ko", "\ud7a4\ud7af beyond the syllables"),
    ("ja", "ｶﾀｶﾅ半角"),
]

TURBO_TEXTS = [
    "Hi there, Sarah here from MochaFone calling you back [chuckle], have you got one minute to "
    "chat about the billing issue?",
    "[clear throat] Well... I don't know [laugh][sigh] maybe [Laugh] not.",
    "Numbers 1,234.56 and emoji 😀 café naïve — “quoted”; ok",
    " leading space and <|endoftext|> inside",
    "[angry][fear][surprised][whispering][advertisement][dramatic][narration][crying][happy]"
    "[sarcastic][clear throat][sigh][shush][cough][groan][sniff][gasp][chuckle][laugh]",
    "tab\tnewline\ncarriage\rreturn  double  spaces",
    "",
    "word " * 1100,
]


def ids_tensor(ids):
    return torch.tensor(list(ids), dtype=torch.int64)


def with_sot_eot(ids):
    row = torch.tensor([list(ids)], dtype=torch.int32)
    row = F.pad(row, (1, 0), value=SOT)
    return F.pad(row, (0, 1), value=EOT)[0].to(torch.int64)


def generate(out_dir, full: bool):
    del full  # the text cases are small either way
    cases = []
    for i, text in enumerate(PUNC_NORM_INPUTS):
        cases.append({"name": f"p{i}", "text": text, "english": punc_norm_en(text),
                      "multilingual": punc_norm_mtl(text), "turbo": punc_norm_turbo(text)})
    write_fixture(out_dir, "text_punc_norm", "text", {"kind": "punc_norm", "cases": cases}, {}, {},
                  {"marker": torch.zeros(1)})

    en = EnTokenizer(str(TOKENIZERS / "en" / "tokenizer.json"))
    outputs, cases = {}, []
    for i, text in enumerate(EN_TEXTS):
        name = f"en{i}"
        cases.append({"name": name, "text": text, "language": None, "raw": bool(text)})
        if text:
            outputs[f"{name}.raw"] = ids_tensor(en.encode(text))
        outputs[f"{name}.ids"] = with_sot_eot(en.encode(punc_norm_en(text)))
    write_fixture(out_dir, "text_english", "text",
                  {"kind": "english", "tokenizer": "en/tokenizer.json", "cases": cases}, {}, {}, outputs)

    for with_cangjie in (True, False):
        original = reference_tokenizer.hf_hub_download

        def fake_download(repo_id, filename, cache_dir=None):
            if with_cangjie and filename == "Cangjie5_TC.json":
                return str(TOKENIZERS / "mtl" / "Cangjie5_TC.json")
            raise FileNotFoundError(f"no hub access for {repo_id}/{filename}")

        reference_tokenizer.hf_hub_download = fake_download
        try:
            mtl = MTLTokenizer(str(TOKENIZERS / "mtl" / "mtl_tokenizer.json"))
        finally:
            reference_tokenizer.hf_hub_download = original
        assert bool(mtl.cangjie_converter.word2cj) == with_cangjie
        inputs = [("zh", t) for t in ZH_TEXTS]
        if with_cangjie:
            assert sorted(MTL_TEXTS) == sorted(SUPPORTED_LANGUAGES)
            inputs = list(MTL_TEXTS.items()) + inputs + MTL_EXTRA
        outputs, cases = {}, []
        for i, (language, text) in enumerate(inputs):
            name = f"mtl{i}"
            lang = language.lower() if language else None  # as mtl_tts.generate passes it
            cases.append({"name": name, "text": text, "language": language, "raw": True})
            outputs[f"{name}.raw"] = ids_tensor(mtl.encode(text, language_id=lang))
            outputs[f"{name}.ids"] = with_sot_eot(mtl.encode(punc_norm_mtl(text), language_id=lang))
        suffix = "cangjie" if with_cangjie else "no_cangjie"
        write_fixture(out_dir, f"text_multilingual_{suffix}", "text",
                      {"kind": "multilingual", "tokenizer": "mtl/mtl_tokenizer.json",
                       "cangjie": "mtl/Cangjie5_TC.json" if with_cangjie else None, "cases": cases},
                      {}, {}, outputs)

    turbo = AutoTokenizer.from_pretrained(str(TOKENIZERS / "turbo"))
    assert len(turbo) == 50276, len(turbo)
    if turbo.pad_token is None:
        turbo.pad_token = turbo.eos_token
    outputs, cases = {}, []
    for i, text in enumerate(TURBO_TEXTS):
        name = f"turbo{i}"
        cases.append({"name": name, "text": text, "language": None, "raw": bool(text)})
        if text:
            raw = turbo(text, return_tensors="pt", padding=True, truncation=True).input_ids[0]
            outputs[f"{name}.raw"] = raw.to(torch.int64)
        ids = turbo(punc_norm_turbo(text), return_tensors="pt", padding=True, truncation=True).input_ids[0]
        outputs[f"{name}.ids"] = ids.to(torch.int64)
    write_fixture(out_dir, "text_turbo", "text", {"kind": "turbo", "tokenizer": "turbo", "cases": cases},
                  {}, {}, outputs)
