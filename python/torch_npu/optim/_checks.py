"""Argument checks shared by the fused optimizers (torch.optim's messages)."""


def check_nonnegative(**values):
    names = {"lr": "learning rate", "eps": "epsilon value", "weight_decay": "weight_decay value",
             "momentum": "momentum value", "alpha": "alpha value", "rho": "rho value"}
    for key, value in values.items():
        if value < 0.0:
            raise ValueError(f"Invalid {names.get(key, key)}: {value}")


def check_betas(betas):
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")
