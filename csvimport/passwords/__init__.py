"""Stage 4, passwords: decide who can reset a password and how, send the reset codes in paced
waves (`csvimport resets`) and write the users' notices (`csvimport notice`)."""
