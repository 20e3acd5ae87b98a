#!/usr/bin/env python3
"""Splits bubblewrap's tests/test-run.sh into cases that run on their own.

test-run.sh is one `set -e` script: its first failure ends it, and later
cases never run. To count cases, this cuts it at the top level into the
shared prelude (everything up to the TAP plan line) and one case per
top-level block that reports "ok", with the setup lines before it; a
top-level `for VAR in WORDS; do ... done` loop becomes one case per word
(its setup, then VAR set, then the loop's body). Each case is written
as PRELUDE + BLOCK into OUTDIR/case-NN.sh, next to test-run.sh so that its
`srcd` finds libtest.sh, and OUTDIR/cases.tsv lists "NN<TAB>NAME" where
NAME is the case's first "ok" line.

usage: split_cases.py TEST_RUN_SH OUTDIR
"""
import re
import shlex
import sys

OPENERS = re.compile(r"^(if|for|while|until|case)\b")
CLOSERS = re.compile(r"^(fi|done|esac)\b")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
OK_LINE = re.compile(r"""^\s*echo\s+["']ok\b(.*?)["']?\s*$""")
FOR_HEAD = re.compile(r"^for\s+(\w+)\s+in\s+(.*?);\s*do\s*$")


def top_level_blocks(lines):
    """Yields lists of lines, each a complete top-level statement."""
    block, depth, heredoc_end = [], 0, None
    for line in lines:
        block.append(line)
        stripped = line.strip()
        if heredoc_end is not None:
            if stripped == heredoc_end:
                heredoc_end = None
            else:
                continue
        elif (m := HEREDOC.search(line)) and not stripped.startswith("#"):
            heredoc_end = m.group(1)
            continue
        if OPENERS.match(stripped):
            depth += 1
        if CLOSERS.match(stripped):
            depth -= 1
        if depth == 0 and heredoc_end is None and not stripped.endswith("\\"):
            yield block
            block = []
    if block:
        yield block


def ok_names(block):
    """The "ok" texts a block can print, its own SKIP notes left out."""
    names = []
    for line in block:
        m = OK_LINE.match(line)
        if not m:
            continue
        text = m.group(1).strip()
        text = text[2:] if text.startswith("- ") else text
        if "# SKIP" not in text:
            names.append(text)
    return names


def name_of(block):
    names = ok_names(block)
    return " / ".join(dict.fromkeys(names)) if names else "(reports only skips)"


def reports_ok(block):
    return any(OK_LINE.match(l) for l in block)


# Commands that only prepare files or variables; a statement made of one of
# them (and not running a sandbox) is setup that later cases may rely on.
SETUP = re.compile(r"^(mkdir|touch|printf|echo|cat|chmod|rm|ln|cp)\b|^\w+=\S*$")


def is_setup(block):
    first = block[0].strip()
    if reports_ok(block) or not SETUP.match(first):
        return False
    if first.startswith(("echo", "printf")) and ">" not in first:
        return False  # output for the log, not a file
    return not any(word in line for line in block for word in ("$RUN", "BWRAP"))




def main():
    source, outdir = sys.argv[1], sys.argv[2]
    with open(source) as f:
        lines = f.read().splitlines()
    plan = next(i for i, l in enumerate(lines) if re.match(r'^echo "1\.\.\d+"', l))
    prelude = lines[: plan + 1]
    # Setup statements of earlier cases come along: a later case may use
    # what they made (test-run.sh ran them all in one directory).
    cases, pending, carried = [], [], []
    for block in top_level_blocks(lines[plan + 1 :]):
        before = pending
        pending = pending + [block]
        if not reports_ok(block):
            continue  # setup for this case (files, helpers), kept with it
        head = FOR_HEAD.match(block[0].strip())
        # Not fatal: some of it only tidies up after the case that ran it.
        setup = ["set +e"] + [l for b in carried for l in b] + ["set -e"] if carried else []
        if head and block[-1].strip() == "done":
            var, words = head.group(1), shlex.split(head.group(2))
            body = block[1:-1]
            prefix = setup + [l for b in before for l in b]
            for word in words:
                name = name_of(body)
                for spelling in ("${" + var + "}", "$" + var):
                    name = name.replace(spelling, word or "(no option)")
                cases.append((name.strip(), prefix + [f"{var}={shlex.quote(word)}"] + body))
        else:
            cases.append((name_of(block), setup + [l for b in pending for l in b]))
        carried += [b for b in pending if is_setup(b)]
        pending = []
    with open(f"{outdir}/cases.tsv", "w") as index:
        for n, (name, body) in enumerate(cases, 1):
            path = f"{outdir}/case-{n:02d}.sh"
            with open(path, "w") as f:
                f.write("\n".join(prelude + body) + "\n")
            index.write(f"{n:02d}\t{name}\n")


if __name__ == "__main__":
    main()
