// Assign a role to a principal on the resource group this module is deployed to (main.bicep
// loops it over the resource groups where the Network Watchers, and those where the VMs, live).
// The name is a function of (scope, principal, role) only, so deploying it again, or from
// another deployment for the same triple, updates the same assignment instead of failing
// with RoleAssignmentExists.
@description('Object (principal) id of the managed identity.')
param principalId string

@description('Full resource id of the role definition to assign.')
param roleDefinitionId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(toLower(resourceGroup().id), principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    // Says what the principal is, so ARM does not look it up in Entra ID before the new
    // identity has replicated there ("PrincipalNotFound").
    principalType: 'ServicePrincipal'
  }
}
