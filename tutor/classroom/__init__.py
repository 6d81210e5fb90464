"""A class: who the students are, what each has done, and the periods a class meets in
(docs/teaching.md). Read from what a teacher's `serve` left on disk: its sessions and the
progress reports students' tutors sent it. Stdlib only; no server, no screen."""
