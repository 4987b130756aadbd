"""The ``course`` command: build, verify, grade (once, watching or on a cluster), report, similarity, export, gradebook,
bench, demo and worker."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from course.assignments import CourseLayoutError, find_root, resolve
from course.export import FORMATS
from course.similarity import MIN_MATCH, THRESHOLD


def _cmd_build(args) -> int:
    from course.build import build

    assignments = resolve(args.root, args.assignments)
    build(args.root, assignments)
    print(f"built release/ for {', '.join(assignments)}")
    return 0


def _cmd_verify(args) -> int:
    from course.verify import verify_assignment

    failed = []
    wrong = named = alternatives = 0
    for assignment in resolve(args.root, args.assignments):
        start = time.perf_counter()
        report = verify_assignment(args.root, assignment, jobs=args.jobs)
        print("\n".join(report.lines()) + f"\n  ({time.perf_counter() - start:.0f} s)", flush=True)
        failed += [] if report.ok else [assignment]
        wrong_verdicts = [v for v in report.verdicts if v.mutant.kind == "wrong"]
        wrong += len(wrong_verdicts)
        named += sum(v.named_mistake for v in wrong_verdicts)
        alternatives += sum(v.mutant.kind == "alternative" for v in report.verdicts)
    print(f"\nverify: {len(failed)} of the assignments failed{': ' + ', '.join(failed) if failed else ''}; "
          f"{wrong} wrong answers ({named} told their mistake) and {alternatives} alternatives judged")
    return 1 if failed else 0


def _cmd_grade(args) -> int:
    from course.grader.gradebook import configured_url
    from course.grader.grading import exercise_table, grade_class

    if args.watch and (args.cluster or args.scheduler_file):
        raise CourseLayoutError("--watch grades on this machine: drop --cluster/--scheduler-file, or --watch")
    if args.cluster or args.scheduler_file:
        return _grade_on_cluster(args)
    if args.watch:
        from course.grader.watch import watch

        return watch(args.root, resolve(args.root, args.assignments), jobs=args.jobs, interval=args.interval,
                     collect=args.collect, release_feedback=args.release_feedback, unsafe_no_sandbox=args.unsafe_no_sandbox,
                     db_url=configured_url())
    if args.collect or args.release_feedback:
        raise CourseLayoutError("--collect and --release-feedback go with --watch")
    grades = {}
    for assignment in resolve(args.root, args.assignments):
        grades[assignment] = grade_class(args.root, assignment, args.jobs, progress=True, unsafe_no_sandbox=args.unsafe_no_sandbox,
                                         db_url=configured_url())
        print(f"\n{assignment}: per exercise\n{exercise_table(args.root, assignment, grades[assignment])}")
    return _report_grades(grades, args.root, configured_url())


def _grade_on_cluster(args) -> int:
    from course.grader.cluster import connect, grade_on_cluster
    from course.grader.gradebook import configured_url
    from course.grader.grading import GradingError, exercise_table

    if args.unsafe_no_sandbox:
        raise GradingError("workers always grade in the sandbox: drop --unsafe-no-sandbox to grade on the cluster")
    assignments = resolve(args.root, args.assignments)
    client = connect(args.cluster, args.scheduler_file)
    grades = {}
    try:
        for assignment in assignments:
            run = grade_on_cluster(args.root, assignment, client, db_url=configured_url(), progress=True)
            grades[assignment] = run.results
            print(f"\n{run.summary()}\n\n{assignment}: per exercise\n{exercise_table(args.root, assignment, run.results)}")
    finally:
        client.close()
    return _report_grades(grades, args.root, configured_url())


def _cmd_worker(args) -> int:
    from course.grader.cluster_worker import grading_dask_environment
    from course.grader.sandbox import sandbox_problem

    if problem := sandbox_problem():
        print(f"course worker: this machine cannot grade: {problem}", file=sys.stderr)
        return 2
    # DASK_SCHEDULER_ADDRESS is how dask-kubernetes tells a worker pod its scheduler.
    address = args.scheduler or ("" if args.scheduler_file else os.environ.get("DASK_SCHEDULER_ADDRESS", ""))
    if bool(address) == bool(args.scheduler_file):
        print("course worker: name the scheduler: its ADDRESS or --scheduler-file FILE (or set DASK_SCHEDULER_ADDRESS)",
              file=sys.stderr)
        return 2
    command = [str(Path(sys.executable).parent / "dask"), "worker",
               *([address] if address else ["--scheduler-file", args.scheduler_file]),
               "--nthreads", str(args.nthreads), "--preload", "course.grader.cluster_worker", *args.passed_options]
    os.execve(command[0], command, grading_dask_environment(dict(os.environ)))


def _report_grades(grades, folder: Path, db_url: str | None = None) -> int:
    """Write grades.csv and report.html, print the class table and where results are; exit 3 when a submission needs a person's attention."""
    from course.grader.gradebook import describe, url_for
    from course.grader.grading import grades_table, write_grades_csv
    from course.report import write_report

    write_grades_csv(grades, folder / "grades.csv")
    report = write_report(folder, grades, folder / "report.html", db_url=db_url)
    print("\n" + grades_table(grades))
    print(f"\ngradebook: {describe(url_for(folder, db_url))}; autograded notebooks: {folder / 'autograded'}; "
          f"feedback: {folder / 'feedback'}; grades: {folder / 'grades.csv'}; report: {report}")
    return 3 if _print_attention(grades) else 0


def _print_attention(grades) -> bool:
    """Print each student and reason that needs a person's attention; return whether there was any."""
    from course.report import attention_summary

    if flagged := attention_summary(grades):
        print("\nneeds a person's attention:\n  " + "\n  ".join(flagged))
    return bool(flagged)


def _cmd_bench(args) -> int:
    from course.bench import measure, measure_grading, table, write_report

    if args.grading:
        from course.cluster_bench import after_local_section, measure_cluster_grading, with_section

        assignment = resolve(args.root, [args.grading])[0]
        path = args.root / "docs" / "benchmarks-grading.md"
        if args.cluster:
            report = measure_cluster_grading(args.root, assignment, students=args.students, jobs=args.jobs, rounds=args.rounds,
                                             server_url=args.db_url).report()
            print(report)
            if args.write:
                path.write_text(with_section(path.read_text() if path.exists() else "# Benchmark: grading a class\n", report))
            return 0
        report = measure_grading(args.root, assignment, students=args.students, jobs=args.jobs, rounds=args.rounds).report()
        print(report)
        if args.write:
            path.write_text(
                "# Benchmark: grading a class\n\nMeasured by `course bench --grading "
                f"{args.grading} --students {args.students} --jobs {args.jobs} --rounds {args.rounds}` on {os.cpu_count()} cores.\n\n{report}"
                + (after_local_section(path.read_text()) if path.exists() else ""))
        return 0
    measurements = []
    for assignment in resolve(args.root, args.assignments):
        measurements.append(measure(args.root, assignment))
        done = measurements[-1]
        print(f"{assignment}: {done.seconds:.1f} s, {done.one_cpu_seconds:.1f} s on one CPU, {done.peak_mb:.0f} MB", flush=True)
    print(table(measurements))
    if args.write:
        write_report(measurements, args.root / "docs" / "benchmarks.md")
        print(f"written to {args.root / 'docs' / 'benchmarks.md'}")
    return 0 if all(m.within_budget for m in measurements) else 1


def _cmd_demo(args) -> int:
    from course.build import build
    from course.demo import prepare_folder, real_class_state, similarity_surprises, surprises, write_demo_class
    from course.grader.grading import grade_class, write_grades_csv
    from course.report import class_similarity, summary_table, write_report

    start = time.perf_counter()
    real_class = real_class_state(args.root)
    assignments = resolve(args.root, args.assignments)
    build(args.root, assignments)
    print(f"built release/ for {', '.join(assignments)}")
    folder = (args.output or args.root / "build" / "demo").resolve()
    prepare_folder(args.root, folder, assignments)
    grades, classes = {}, {}
    for assignment in assignments:
        classes[assignment] = write_demo_class(args.root, assignment, folder)
        print(f"grading {len(classes[assignment])} demo submissions of {assignment} with {args.jobs} nbgrader workers", flush=True)
        grades[assignment] = grade_class(folder, assignment, args.jobs, progress=True, db_url=args.db_url)
    write_grades_csv(grades, folder / "grades.csv")
    notes = {assignment: {student.name: student.about for student in students} for assignment, students in classes.items()}
    similarity = {assignment: class_similarity(folder, assignment) for assignment in assignments}
    report = write_report(folder, grades, folder / "report.html", title="Grade report: the demo class", notes=notes,
                          similarity=similarity, db_url=args.db_url)
    unexpected = [f"{assignment}: {problem}" for assignment in assignments
                  for problem in surprises(classes[assignment], grades[assignment])
                  + similarity_surprises(classes[assignment], similarity[assignment])]
    if real_class_state(args.root) != real_class:
        unexpected.append(f"the course's own gradebook or submitted/ in {args.root} changed during the demo")
    names = dict.fromkeys(student.name for students in classes.values() for student in students)
    print(f"\ndemo class: {', '.join(names)}\n\n{summary_table(grades)}")
    _print_attention(grades)
    if unexpected:
        print("\nNOT as expected:\n  " + "\n  ".join(unexpected))
    else:
        print("\nevery demo student got the points its submission earns, only the broken and hostile ones were flagged, "
              "and the similarity check paired only students who copied")
    print(f"\nreport:   {report}\ngrades:   {folder / 'grades.csv'}\nfeedback: {folder / 'feedback'}/<student>/<assignment>/"
          f"\n(all in the demo course folder {folder}, not in the course's own submitted/ or gradebook; "
          f"{time.perf_counter() - start:.0f} s)")
    return 1 if unexpected else 0


def _cmd_report(args) -> int:
    from course.grader.gradebook import configured_url
    from course.report import graded_results, summary_table, write_report

    grades = graded_results(args.root, resolve(args.root, args.assignments), db_url=configured_url())
    report = write_report(args.root, grades, (args.output or args.root / "report.html").resolve(), db_url=configured_url())
    print(summary_table(grades))
    _print_attention(grades)
    print(f"\nreport: {report}")
    return 0


def _cmd_gradebook_migrate(args) -> int:
    from course.grader.gradebook import DB_URL_VARIABLE, configured_url, describe, url_for, migrate_gradebook

    source = args.source or url_for(args.root, configured_url())
    counts = migrate_gradebook(source, args.target)
    print(f"moved {describe(source)} to {describe(args.target)}, every row checked:")
    print("\n".join(f"  {table:28} {rows:>7}" for table, rows in counts.items()))
    print(f"\nto grade into it from now on: export {DB_URL_VARIABLE}='{describe(args.target)}' (with its password, if any)")
    return 0


def _cmd_similarity(args) -> int:
    from course.similarity import report_lines, similarity_report

    found = False
    for assignment in resolve(args.root, args.assignments):
        report = similarity_report(args.root, assignment, threshold=args.threshold, min_match=args.min_match)
        print("\n".join(report_lines(report)), flush=True)
        found |= report.found
    return 3 if found else 0


def _cmd_export(args) -> int:
    from course.export import export

    canvas_ids = {}
    for pair in args.canvas_id:
        name, _, canvas_id = pair.partition("=")
        if not canvas_id.strip():
            raise CourseLayoutError(f"--canvas-id {pair!r}: write ASSIGNMENT=ID, e.g. 01=123456 (the number in the "
                                    "assignment's Canvas address)")
        canvas_ids[resolve(args.root, [name.strip()])[0]] = canvas_id.strip()
    assignments = resolve(args.root, args.assignments) if args.assignments else None
    book = export(args.root, args.to, args.file.resolve(), assignments, canvas_ids)
    print(f"{args.to} export of {len(book.assignments)} assignments for {len(book.students)} students: {args.file.resolve()}")
    for warning in book.warnings():
        print(f"  {warning}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``course`` command."""
    parser = argparse.ArgumentParser(prog="course", description="Build, verify, grade, report on and benchmark the course's notebooks.")
    parser.add_argument("--root", type=Path, default=None, help="the course folder (default: found from the working directory)")
    commands = parser.add_subparsers(dest="command", required=True)
    jobs = {"type": int, "default": os.cpu_count() or 1, "help": "parallel nbgrader processes (default: number of cores)"}
    names = {"nargs": "*", "metavar": "ASSIGNMENT", "help": "assignment ids or numbers, e.g. 01 (default: all)"}

    build = commands.add_parser("build", help="regenerate release/ from source/ with nbgrader generate_assignment")
    build.add_argument("assignments", **names)
    build.set_defaults(run=_cmd_build)

    verify = commands.add_parser("verify", help="prove solutions score full, releases 0, nothing leaks, mutants are caught")
    verify.add_argument("assignments", **names)
    verify.add_argument("--jobs", **jobs)
    verify.set_defaults(run=_cmd_verify)

    grade = commands.add_parser("grade", help="autograde submitted/ in parallel, sandboxed; write the gradebook, "
                                "autograded/, feedback/ and grades.csv; exit 3 if a submission needs attention")
    grade.add_argument("assignments", nargs="+", metavar="ASSIGNMENT", help="assignment ids or numbers")
    grade.add_argument("--jobs", **jobs)
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="grade without the bubblewrap sandbox (only for notebooks you trust)")
    scheduler = grade.add_mutually_exclusive_group()
    scheduler.add_argument("--cluster", metavar="ADDRESS", help="grade on the Dask workers of this scheduler, e.g. "
                           "tcp://10.0.0.5:8786 (start them with `course worker`); only what is not graded yet")
    scheduler.add_argument("--scheduler-file", metavar="FILE", help="as --cluster, the address read from a Dask scheduler file")
    grade.add_argument("--watch", action="store_true", help="keep running: grade each new submission as it arrives in "
                       "submitted/ and write its feedback (Ctrl-C stops; nothing is lost or graded twice)")
    grade.add_argument("--collect", action="store_true", help="with --watch: run `nbgrader collect --update` every round")
    grade.add_argument("--release-feedback", action="store_true",
                       help="with --watch: release each new feedback to the exchange at once (`nbgrader release_feedback`)")
    grade.add_argument("--interval", type=float, default=30.0, help="with --watch: seconds between rounds (default: 30)")
    grade.set_defaults(run=_cmd_grade)

    worker = commands.add_parser("worker", help="run a Dask worker that grades for `course grade --cluster` "
                                 "(refuses to start without a working sandbox)",
                                 epilog="Options after -- go to `dask worker` as they are, e.g. -- --memory-limit 8GB "
                                 "--local-directory /scratch")
    worker.add_argument("scheduler", nargs="?", metavar="ADDRESS", help="the scheduler's address, e.g. tcp://10.0.0.5:8786 "
                        "(default: $DASK_SCHEDULER_ADDRESS)")
    worker.add_argument("--scheduler-file", metavar="FILE", help="instead of ADDRESS, a Dask scheduler file")
    worker.add_argument("--nthreads", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once, one kernel each (default: number of cores)")
    worker.set_defaults(run=_cmd_worker, takes_passed_options=True, needs_course_folder=False)

    bench = commands.add_parser("bench", help="time and memory of each solved notebook in a fresh kernel")
    bench.add_argument("assignments", **names)
    bench.add_argument("--no-write", dest="write", action="store_false", help="do not rewrite the report in docs/")
    bench.add_argument("--grading", metavar="ASSIGNMENT",
                       help="instead, time grading a made-up class of this assignment (docs/benchmarks-grading.md)")
    bench.add_argument("--students", type=int, default=30, help="class size for --grading (default: 30)")
    bench.add_argument("--rounds", type=int, default=1,
                       help="for --grading, how many times to measure every way; the ratios are medians (default: 1)")
    bench.add_argument("--jobs", **jobs)
    bench.add_argument("--cluster", action="store_true", help="with --grading: `course grade --jobs N` against `course grade "
                       "--cluster` on N single-threaded workers of this machine")
    bench.add_argument("--db-url", metavar="URL", default=None, help="with --cluster: a PostgreSQL server on which each run "
                       "gets a new database of its own (default: SQLite gradebooks)")
    bench.set_defaults(run=_cmd_bench)

    demo = commands.add_parser("demo", help="build the release, grade a generated demo class and print the grades")
    demo.add_argument("assignments", **names)
    demo.add_argument("--jobs", **jobs)
    demo.add_argument("--output", type=Path, default=None, help="folder for the demo class (default: build/demo in the course folder)")
    demo.add_argument("--db-url", default=None, metavar="URL",
                      help="grade the demo class into this database, one of its own (default: a SQLite gradebook in the demo folder)")
    demo.set_defaults(run=_cmd_demo)

    report = commands.add_parser("report", help="write report.html, figures and tables of the grades already in this "
                                 "course folder's gradebook (after `course grade`)")
    report.add_argument("assignments", **names)
    report.add_argument("--output", type=Path, default=None, help="where to write the report (default: report.html in the course folder)")
    report.set_defaults(run=_cmd_report)

    gradebook = commands.add_parser("gradebook", help="move the gradebook to another database (e.g. PostgreSQL)")
    gradebook_commands = gradebook.add_subparsers(dest="gradebook_command", required=True)
    migrate = gradebook_commands.add_parser("migrate", help="copy every grade, comment and student into an empty database "
                                            "and check nothing was lost")
    migrate.add_argument("--to", required=True, metavar="URL", dest="target",
                         help="the empty target database, e.g. postgresql+psycopg://grader@db.example.org/course")
    migrate.add_argument("--from", metavar="URL", dest="source", default=None,
                         help="the gradebook to move (default: COURSE_DB_URL, else gradebook.db in the course folder)")
    migrate.set_defaults(run=_cmd_gradebook_migrate)

    similarity = commands.add_parser("similarity", help="pairs of submissions whose own code is largely the same "
                                     "(starter code and the reference solution left out); exit 3 if any")
    similarity.add_argument("assignments", nargs="+", metavar="ASSIGNMENT", help="assignment ids or numbers")
    similarity.add_argument("--threshold", type=float, default=THRESHOLD,
                            help=f"share of one student's own code found in the other's to list a pair (default: {THRESHOLD})")
    similarity.add_argument("--min-match", type=int, default=MIN_MATCH,
                            help=f"least matching code, in characters of code tokens, to list a pair (default: {MIN_MATCH})")
    similarity.set_defaults(run=_cmd_similarity)

    export = commands.add_parser("export", help="write the gradebook's grades (written answers and late penalties "
                                 "included) as a file Canvas or Moodle imports, or as a plain CSV")
    export.add_argument("--to", choices=FORMATS, required=True, help="the file's format")
    export.add_argument("file", type=Path, metavar="FILE", help="where to write it")
    export.add_argument("assignments", **names)
    export.add_argument("--canvas-id", action="append", default=[], metavar="ASSIGNMENT=ID",
                        help="the Canvas id of an assignment's column, e.g. 01=123456 (repeat for each)")
    export.set_defaults(run=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``course`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = build_parser()
    args = parser.parse_args(argv[:cut])
    args.passed_options = argv[cut + 1:]
    if args.passed_options and not getattr(args, "takes_passed_options", False):
        parser.error(f"`course {args.command}` takes no options after --")
    try:
        if getattr(args, "needs_course_folder", True):
            args.root = find_root(args.root)
        return args.run(args)
    except (CourseLayoutError, RuntimeError) as error:
        print(f"course {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
