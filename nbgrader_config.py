"""nbgrader configuration for the course; nbgrader reads it from the folder it runs in.

Run nbgrader from the repository root (`nbgrader generate_assignment 01-...`,
`nbgrader autograde 01-...`). The course's own tools copy this file into scratch folders,
so every path here is relative to the folder holding this file.
"""
import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "ai-engineering-for-developers"
# mutants.toml holds wrong and alternative answers for `course verify`: never release it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.toml"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Every test cell finishes in seconds on a 2-core machine; 60 s leaves room for a slow laptop.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
