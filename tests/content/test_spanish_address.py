"""Spanish speaks to people one way: tú, everywhere the bot writes (its own texts and the library).

Mixing "usted" and "tú" in one conversation reads as careless; the check looks for the usual
usted forms (the pronoun, "su equipo", "sus datos", usted imperatives) in every Spanish file the
bot sends from. The distress rules are not messages and are not checked here, and neither are the
items of validated questionnaires (content/es/instruments/): they keep their published wording.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPANISH = REPO / "content" / "es"
USTED = re.compile(
    r"\b(usted|ustedes|su equipo|sus datos|su plan|su chequeo|su sesión|sus sesiones|sus participantes|"
    r"Escriba|escriba|Toque|toque|Pida|pida|Llame|llame|Envíe|envíe|Elija|elija|Responda|responda|Cuénteme|"
    r"Pruebe|Respire|Intente|Recuerde|Busque|Necesita|necesita ayuda|Está de acuerdo|Puede pausar)\b")


def spanish_files() -> list[Path]:
    return sorted(p for p in SPANISH.rglob("*") if p.suffix in (".toml", ".md")
                  and "safety" not in p.parts and "instruments" not in p.parts)


@pytest.mark.parametrize("path", spanish_files(), ids=lambda p: str(p.relative_to(SPANISH)))
def test_spanish_uses_tu(path: Path) -> None:
    problems = [f"{path.relative_to(REPO)}:{number}: {match.group(0)!r}"
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if not line.lstrip().startswith("#") for match in USTED.finditer(line)]
    assert not problems, "usted forms (write tú):\n" + "\n".join(problems)
