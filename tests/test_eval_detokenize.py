"""De-tokenizers: readable output, and retokenize(detokenize(line)) == line on lines in each data set's real format."""

from __future__ import annotations

import pytest

from evaluation.detokenize import ONE_BILLION_WORD, PTB, WIKITEXT, detokenize_line, detokenize_lines, retokenize_line

# Lines in the formats of wiki.test.raw, ptb.test.txt and news.en.heldout-00000-of-00050.
WIKITEXT_LINES = [
    " = Valkyria Chronicles III = ",
    " = = Gameplay = = ",
    " Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of the "
    "Battlefield 3 ) , commonly referred to as Valkyria Chronicles III outside Japan , is a tactical role @-@ playing "
    "video game developed by Sega and Media.Vision for the PlayStation Portable . ",
    " The game 's battle system , the BliTZ system , is carried over directly from Valkyira Chronicles . It cost "
    "$ 1 @,@ 000 and weighed 3 @.@ 5 kg in the U.S. ",
    ' He said " it was the best game " ; critics disagreed . ',
]
PTB_LINES = [
    " no it was n't black monday ",
    " the company 's $ N million <unk> plan ",
    " but while the new york stock exchange did n't fall apart friday as the dow jones industrial average plunged N "
    "points most of it in the final hour it barely managed to stay this side of chaos ",
]
ONE_BILLION_WORD_LINES = [
    "The U.S. Centers for Disease Control and Prevention initially advised school systems to close if outbreaks "
    "occurred , then reversed itself , saying the apparent mildness of the virus meant most schools and day care "
    "centers should stay open , even if they had confirmed cases of swine flu .",
    "He said : \" I don 't know what they 're doing . \"",
    "It 's the best ( and cheapest ) option in the U.S. .",
    "Sales rose 5 % to $ 3.2 billion ; profits fell !",
]


@pytest.mark.parametrize(
    "style,lines", [(WIKITEXT, WIKITEXT_LINES), (PTB, PTB_LINES), (ONE_BILLION_WORD, ONE_BILLION_WORD_LINES)]
)
def test_detokenizers_are_invertible_on_real_format_lines(style, lines) -> None:
    for line in lines:
        detokenized = detokenize_line(line, style)
        assert detokenized != line
        assert retokenize_line(detokenized, style) == line
    result = detokenize_lines("\n".join(lines), style)
    assert result.fraction == 1.0


def test_detokenized_text_reads_like_web_text() -> None:
    assert detokenize_line(WIKITEXT_LINES[3], WIKITEXT) == (
        "The game's battle system, the BliTZ system, is carried over directly from Valkyira Chronicles. "
        "It cost $1,000 and weighed 3.5 kg in the U.S."
    )
    assert detokenize_line(PTB_LINES[0], PTB) == "No it wasn't black monday"
    assert (
        detokenize_line(ONE_BILLION_WORD_LINES[1], ONE_BILLION_WORD) == "He said: \"I don't know what they're doing.\""
    )


def test_lines_that_would_not_invert_are_kept_as_they_are() -> None:
    odd = "He joined Apple Inc. in 1998 ."  # "Inc." keeps its period in the file but would re-tokenize as "Inc ."
    assert retokenize_line(detokenize_line(odd, ONE_BILLION_WORD), ONE_BILLION_WORD) != odd
    result = detokenize_lines(odd + "\n" + ONE_BILLION_WORD_LINES[2], ONE_BILLION_WORD)
    assert result.text.split("\n") == [odd, "It's the best (and cheapest) option in the U.S.."]
    assert (result.lines, result.changed) == (2, 1)
