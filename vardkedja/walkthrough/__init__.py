"""The seed report's processes, step by step, from the docs pages of the demo federation.

``vardkedja run`` writes, for the federation it started, ``var/walkthrough.md``: every
step of a kontaktbegäran, a vårdkedjeremiss with its remissmöte and ordered plan, a
utskrivningsplanering with a SIP before discharge, and an HVB notification, as a user
takes them on the docs pages (which page, which unit's token to paste into *Authorize*,
which operation, the body to paste, what to note from the answer). The demo's unit ids and
tokens are filled in; what only the answers tell (a task's id, an ETag) is named and the
user carries it forward.

The same steps are written as ``var/walkthrough.json``, and
:func:`vardkedja.walkthrough.taking.perform` takes them exactly as written against the
running federation (``tests/e2e/test_make_run.py``), so the document a user follows is the
document the tests prove.

- :mod:`vardkedja.walkthrough.steps`: the steps, built for the demo's unit ids and dates;
- :mod:`vardkedja.walkthrough.document`: the steps as the user reads them (markdown) and
  as data (JSON), and writing both;
- :mod:`vardkedja.walkthrough.taking`: taking the steps against a running federation.

The person is fictitious: 19121212-1212 is Skatteverket's well-known test personnummer
(Tolvan Tolvansson).
"""
