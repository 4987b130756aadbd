"""The grader: everything that runs on the instructor's side of grading, never in a student's kernel.

``sandbox`` (bubblewrap kernels), ``preprocessors`` (nbgrader made hardened), ``guard`` (the one
module a grading kernel loads on the grader's behalf, to protect the test machinery),
``worker`` and ``grading`` (many students at once). What a student's kernel imports for its
own use (``course.data``, ``course.models``, ``course.checks``) lives one level up.
"""
