"""Command line: ``python -m helpers run|refresh|doctor|site|notebooks|prepare-notebooks|assign|grade``."""

from __future__ import annotations

import argparse
import logging
import sys

from .course import doctor, runner


def _oserror(err: OSError) -> str:
    """One line naming the path: ``cannot write build/x: No space left on device``."""
    path = err.filename or ""
    reason = err.strerror or str(err)
    return f"error: cannot write {path}: {reason}" if path else f"error: {reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers", description="Image generative models course kit"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the notebooks with papermill and write the report")
    p_run.add_argument("--profile", default="auto", help="auto (default), smoke, laptop or gpu")
    p_run.add_argument(
        "--only", action="append", help="notebook prefix or name (repeat or comma-separate)"
    )
    p_run.add_argument("--out", default=None, help="build root (default build/)")
    p_run.add_argument("--seed", type=int, default=0)
    p_ref = sub.add_parser("refresh", help="re-execute the notebooks in place (committed outputs)")
    p_ref.add_argument("--profile", default="laptop")
    p_ref.add_argument("--only", action="append")
    sub.add_parser("doctor", help="check the environment and say how to fix what is missing")
    p_site = sub.add_parser("site", help="build the course website into build/site/html")
    p_site.add_argument("--out", default=None)
    p_site.add_argument(
        "--notebooks-from", default=None, help="folder of executed notebooks (default notebooks/)"
    )
    p_nbs = sub.add_parser(
        "notebooks", help="copy the notebooks and course files into a folder (works installed)"
    )
    p_nbs.add_argument("dest", help="destination folder")
    p_nbs.add_argument(
        "--overwrite", action="store_true", help="replace notebooks already there (default: keep)"
    )
    p_prep = sub.add_parser(
        "prepare-notebooks",
        help="put the Colab/Binder links and the install step into every notebook (idempotent)",
    )
    p_prep.add_argument("paths", nargs="*", help="notebooks (default: every course notebook)")
    p_prep.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when something would change"
    )
    p_assign = sub.add_parser(
        "assign", help="student and instructor editions with an autograder (otter-grader)"
    )
    p_assign.add_argument("--out", default=None, help="output folder (default build/assign)")
    p_assign.add_argument("--only", action="append", help="notebook prefix or name")
    p_grade = sub.add_parser(
        "grade", help="grade submitted notebooks of the student edition locally (no Docker)"
    )
    p_grade.add_argument("submissions", nargs="+", help="answered student notebooks")
    p_grade.add_argument("--autograder", default=None, help="autograder zip (default: by name)")
    p_grade.add_argument("--profile", default="smoke", help="profile to execute under (smoke)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)

    if args.command == "doctor":
        checks = doctor.doctor()
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            print(
                f"[{mark}] {c.name:<22} {c.detail}"
                + ("" if c.ok or not c.fix else f"\n       fix: {c.fix}")
            )
        bad = [c for c in checks if not c.ok]
        print(f"{len(checks) - len(bad)} checks passed, {len(bad)} failed")
        return 1 if bad else 0

    if args.command == "site":
        from .course import website

        try:
            index = website.build_site(args.out, notebooks_from=args.notebooks_from)
        except (RuntimeError, FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except OSError as err:
            print(_oserror(err), file=sys.stderr)
            return 1
        print(f"site: {index}")
        return 0

    if args.command == "notebooks":
        written = runner.copy_notebooks(args.dest, overwrite=args.overwrite)
        print(f"copied {len(written)} files into {args.dest}")
        return 0

    if args.command == "prepare-notebooks":
        from pathlib import Path

        from .course import launch

        try:
            changed = launch.prepare_notebooks(
                [Path(p) for p in args.paths] or None, check=args.check
            )
        except (ValueError, LookupError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        verb = "would change" if args.check else "changed"
        for path in changed:
            print(f"{verb}: {path}")
        print(f"{len(changed)} files {verb}")
        return 1 if args.check and changed else 0

    if args.command == "assign":
        from .course import assign

        try:
            written = assign.assign(args.out, only=args.only)
        except (ValueError, LookupError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for a in written:
            print(f"{a.stem}: {len(a.questions)} exercises → {a.student.parent.parent}")
        print("student/ (hand out), instructor/ (solutions), autograder/ (zip for otter run)")
        return 0

    if args.command == "grade":
        from .course import assign

        for submission in args.submissions:
            try:
                print(assign.grade(submission, args.autograder, profile=args.profile))
            except (ValueError, FileNotFoundError, RuntimeError) as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
        return 0

    in_place = args.command == "refresh"
    try:
        report = runner.run_notebooks(
            args.profile,
            only=args.only,
            out=None if in_place else args.out,
            seed=getattr(args, "seed", 0),
            in_place=in_place,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(_oserror(err), file=sys.stderr)
        return 2
    for nb in report.notebooks:
        print(f"{nb.status:>6}  {nb.seconds:7.1f} s  {len(nb.figures):2d} figures  {nb.name}")
        if nb.error:
            print("        " + nb.error.splitlines()[-1][:300])
    print(f"profile {report.profile} on {report.device}; report: {report.report_path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
