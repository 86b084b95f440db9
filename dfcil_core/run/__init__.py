"""The run: one module per stage function (split, synthesize, train, evaluate), the artefact contract
(layout, hashes, checked loads), the run's own figures and report page."""
