-- Argo CD health for moa.dev/Adapter: Healthy once the actual stage matches the desired one.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the moa operator"
  return hs
end
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "PromotionBlocked" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = "Promotion to " .. tostring(obj.spec.stage) .. " blocked: " .. tostring(c.message)
      return hs
    end
  end
end
if obj.status.stage == obj.spec.stage then
  hs.status = "Healthy"
  hs.message = "Stage " .. tostring(obj.status.stage)
  return hs
end
hs.status = "Progressing"
hs.message = "Moving to stage " .. tostring(obj.spec.stage)
return hs
