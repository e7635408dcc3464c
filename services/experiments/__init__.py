"""Online experiments: arms assigned by a salted hash of the subject, their state shared by
every process through the data directory, and their reports on the product metric."""
