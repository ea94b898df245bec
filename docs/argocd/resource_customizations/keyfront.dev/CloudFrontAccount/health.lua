-- Argo CD health of a keyfront CloudFrontAccount: Healthy once keyfront checked its
-- credentials (Ready), Degraded when the check failed (the reason says why: AccessDenied,
-- an unknown role, an unreachable endpoint), Progressing until it has looked.
local hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      if condition.status == "True" then
        hs.status = "Healthy"
      else
        hs.status = "Degraded"
      end
      hs.message = condition.reason .. ": " .. condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for keyfront to check the account's credentials"
return hs
