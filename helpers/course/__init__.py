"""The course machinery, apart from the teaching modules: running and reporting, the environment
check, the website, and the notebooks' experiment budgets.

* :mod:`helpers.course.runner` — execute the notebooks with papermill (``python -m helpers run``,
  ``python -m helpers refresh``);
* :mod:`helpers.course.report` — the run report and the "What you should see" tables;
* :mod:`helpers.course.doctor` — ``python -m helpers doctor``;
* :mod:`helpers.course.website` — the course website (Jupyter Book), ``python -m helpers site``;
* :mod:`helpers.course.launch` — the Colab and Binder links and the notebooks' install step
  (``python -m helpers prepare-notebooks``);
* :mod:`helpers.course.assign` — student and instructor editions with an otter-grader autograder
  (``python -m helpers assign``, ``python -m helpers grade``);
* :mod:`helpers.course.experiments` — each notebook's sizes, steps and repeats per profile.
"""
