"""Real-time decisions: the offer to show on the payment-success page (支付成功页)."""
