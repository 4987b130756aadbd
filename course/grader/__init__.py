"""The grader: everything that runs on the instructor's side of grading, never in a student's kernel.

``sandbox`` (bubblewrap kernels), ``preprocessors`` (nbgrader made hardened), ``guard`` (the one
module a grading kernel loads on the grader's behalf, to protect the test machinery),
``worker`` and ``grading`` (many students at once). What a student's kernel imports for its
own use (``course.data``, ``course.models``, ``course.checks``) lives one level up.
"""


class GraderFault(RuntimeError):
    """Grading a submission failed before any of its code ran (the sandbox, the kernel or the guard).

    A fault of the grader or the machine, never of the submission: that submission gets no
    grade, and the message says what failed and how to fix it.
    """
