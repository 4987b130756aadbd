"""AI Engineering for Developers: data, models, student checks and the grading tools of the course."""
