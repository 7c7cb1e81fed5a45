"""``spotgate preflight``: before the first ``terraform apply`` (and any time after), check the project.

What the deployment needs (``needs``) and whether the project has it (``checks``) are pure functions; what the
project has is read with the caller's credentials and the real Google clients (``probe``), from the Terraform
variables the apply will use (``deployment``). ``cli`` prints one row per check with the fix for each failure.
"""
