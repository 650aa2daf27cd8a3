"""`make new-saga NAME=<PascalCaseName>`: a new saga that runs end to end at once, for a team to make its own
(saga_scaffold.scaffold; the files it writes come from templates/)."""
